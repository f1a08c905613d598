import { join } from 'node:path';
import { type AdamW, type Module, type NamedVariables, clipByGlobalNorm, globalNorm, settleHostChecks } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import {
  CheckpointError,
  CheckpointMismatchError,
  type EvalRecord,
  type StepRecord,
  type TrainerState,
  jsonDifferences,
  latestCheckpoint,
  readCheckpointMeta,
  readCheckpointTensors,
  readModelShapes,
  writeCheckpoint,
} from './checkpoint';
import { type DataSource, DataSourceError } from './data-source';
import { MetricsLog } from './metrics-log';
import { NonFiniteGuard } from './non-finite-guard';
import { buildOptimizer, resolveOptimizerOptions } from './optimizer-options';
import { type StageSelection, applyFreezing, discriminatorGroups, selectStageParams } from './parameter-selection';
import { type ProgressMode, createProgress } from './progress';
import { learningRateFactor } from './schedule';
import { type LossFn, type Stage, type StepContext, validateStage } from './stage';
import { stepSeed } from './step-seed';
import { TrainerConfigError, checkInt, checkKnownKeys } from './trainer-config-error';

/** Options of a `Trainer`. */
export interface TrainerOptions<B> {
  /** The whole model (e.g. tokenizer + adapter + LM + discriminator); its stateDict is checkpointed. */
  model: Module;
  /** Batches, with a cursor for resume. */
  data: DataSource<B>;
  /** Stages run in order (DESIGN.md stages table). */
  stages: Stage<B>[];
  /** The model's config, written to config.json and compared on resume. Defaults to `{}`. */
  modelConfig?: Record<string, unknown>;
  /** Run seed: per-step seeds derive from it (`StepContext.seed`). Defaults to 0. */
  seed?: number;
  /** Checkpointing. Defaults to none (nothing is saved, resume impossible). */
  checkpoint?: {
    /** Root directory; checkpoints go to `<dir>/step-<n>`, `latest` names the newest. */
    dir: string;
    /** Save every this many global steps (and always at the end of each stage). Defaults to 0: stage ends only. */
    every?: number;
    /** Keep the newest this many checkpoints. Defaults to 3. */
    keepLast?: number;
  };
  /** JSONL metrics log path. Defaults to `<checkpoint.dir>/metrics.jsonl`, or none without checkpoints. */
  metricsPath?: string;
  /** Write a step record every this many steps (skipped steps always). Defaults to 1. */
  logEvery?: number;
  /** Progress display. Defaults to `'auto'`. */
  progress?: ProgressMode;
  /** Steps between plain progress lines. Defaults to 50. */
  progressEvery?: number;
  /** Where plain lines and warnings go. Defaults to `console.log`. */
  print?: (line: string) => void;
  /** Stop after this many consecutive non-finite steps. Defaults to 5. */
  maxBadSteps?: number;
  /** Dispose every tensor in a batch after its step. Defaults to true. */
  disposeBatches?: boolean;
  /** Called with every step record (logged or not), after the step. */
  onStep?: (record: StepRecord) => void;
  /**
   * Step records kept for `FitResult.records`: the most recent this many, so a long run's memory
   * stays flat (the metrics log keeps them all). Defaults to 1000; `Infinity` keeps every one.
   */
  keepRecords?: number;
}

const OPTION_KEYS = [
  'model',
  'data',
  'stages',
  'modelConfig',
  'seed',
  'checkpoint',
  'metricsPath',
  'logEvery',
  'progress',
  'progressEvery',
  'print',
  'maxBadSteps',
  'keepRecords',
  'disposeBatches',
  'onStep',
] as const;

/** Options of one `fit` call. */
export interface FitOptions {
  /**
   * `true`: continue from `<checkpoint.dir>/latest` (start fresh when there is none); a path:
   * continue from that checkpoint directory. Defaults to false.
   */
  resume?: boolean | string;
  /** Stop (with a checkpoint) once this many global steps are done. Defaults to the end of the last stage. */
  until?: number;
  /**
   * Stops the run cleanly when it aborts (Ctrl-C in `ett train`): the step in progress finishes, a
   * checkpoint is written (with `checkpoint.dir`), and `fit` returns with `stopped: true`;
   * `fit({ resume: true })` continues from there as if nothing had happened. With a signal, `fit`
   * lets the event loop run after every step, so signal handlers and timers fire even where the
   * steps themselves never wait (cpu, wasm). Defaults to none.
   */
  signal?: AbortSignal;
}

/** What `fit` returns. */
export interface FitResult {
  /** Global steps completed. */
  step: number;
  /** Steps whose update was skipped by the NaN/Inf guard. */
  skippedSteps: number;
  /** The step records of this call: the most recent `keepRecords` (default 1000) of them. */
  records: StepRecord[];
  evals: EvalRecord[];
  /** The last checkpoint written, if any. */
  checkpoint: string | null;
  /** True when `signal` stopped the run before its end (after `step`, with `checkpoint` written). */
  stopped: boolean;
}

interface Optimized {
  finite: boolean;
  losses: Record<string, number>;
  gradNorm: number;
  stats?: Record<string, number>;
}

/**
 * Runs stages of training: per stage it freezes everything but the stage's modules, builds the
 * generator (and discriminator) AdamW over parameter groups, and loops `steps` optimizer steps of
 * gradient accumulation → NaN/Inf check → clipping → update, discriminator first. It logs,
 * evaluates and checkpoints along the way, and `fit({ resume: true })` continues a run exactly.
 */
export class Trainer<B> {
  readonly #o: TrainerOptions<B>;
  readonly #selections: StageSelection[];
  readonly #guard: NonFiniteGuard;
  readonly #print: (line: string) => void;
  #pending: B[] = [];
  #recent: StepRecord[] = [];
  #evals: EvalRecord[] = [];

  constructor(options: TrainerOptions<B>) {
    checkKnownKeys('Trainer', options, OPTION_KEYS);
    const o = options;
    if (!o.model || typeof o.model.stateDict !== 'function') throw new TrainerConfigError('Trainer: model must be a Module');
    if (!o.data || typeof o.data.next !== 'function' || typeof o.data.cursor !== 'function' || typeof o.data.restore !== 'function') {
      throw new TrainerConfigError('Trainer: data must be a DataSource { next(), cursor(), restore(cursor) }');
    }
    if (!Array.isArray(o.stages) || o.stages.length === 0) throw new TrainerConfigError('Trainer: stages must be a non-empty array');
    for (const [i, s] of o.stages.entries()) validateStage(s, i);
    const names = o.stages.map((s) => s.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) throw new TrainerConfigError(`Trainer: two stages are named "${dup}"; checkpoints identify stages by name`);
    if (o.checkpoint !== undefined) {
      checkKnownKeys('Trainer checkpoint', o.checkpoint, ['dir', 'every', 'keepLast']);
      if (typeof o.checkpoint.dir !== 'string' || !o.checkpoint.dir) throw new TrainerConfigError('Trainer checkpoint: dir must be a path');
      if (o.checkpoint.every !== undefined) checkInt('Trainer checkpoint', 'every', o.checkpoint.every, 0);
      if (o.checkpoint.keepLast !== undefined) checkInt('Trainer checkpoint', 'keepLast', o.checkpoint.keepLast, 1);
    }
    if (o.seed !== undefined) checkInt('Trainer', 'seed', o.seed, 0);
    if (o.logEvery !== undefined) checkInt('Trainer', 'logEvery', o.logEvery, 1);
    if (o.progressEvery !== undefined) checkInt('Trainer', 'progressEvery', o.progressEvery, 1);
    if (o.maxBadSteps !== undefined) checkInt('Trainer', 'maxBadSteps', o.maxBadSteps, 1);
    if (o.keepRecords !== undefined && o.keepRecords !== Number.POSITIVE_INFINITY) checkInt('Trainer', 'keepRecords', o.keepRecords, 0);
    if (o.progress !== undefined && !['auto', 'bar', 'lines', 'none'].includes(o.progress)) {
      throw new TrainerConfigError(`Trainer: progress must be 'auto', 'bar', 'lines' or 'none', got ${JSON.stringify(o.progress)}`);
    }
    if (o.modelConfig !== undefined && JSON.stringify(JSON.parse(JSON.stringify(o.modelConfig))) !== JSON.stringify(o.modelConfig)) {
      throw new TrainerConfigError('Trainer: modelConfig must be plain JSON (it is written to config.json)');
    }
    // Every stage is resolved against the model now, so a bad path or an empty stage fails before any step.
    this.#selections = o.stages.map((s, i) => selectStageParams(o.model, s, `stage ${i} ("${s.name}")`));
    this.#o = o;
    this.#guard = new NonFiniteGuard(o.maxBadSteps ?? 5);
    this.#print = o.print ?? ((line) => console.log(line));
  }

  /** Trains (or resumes) to the end of the last stage, or to `until`. */
  async fit(options: FitOptions = {}): Promise<FitResult> {
    checkKnownKeys('Trainer.fit', options, ['resume', 'until', 'signal']);
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal))
      throw new TrainerConfigError('Trainer.fit: signal must be an AbortSignal (new AbortController().signal)');
    const o = this.#o;
    const stages = o.stages;
    const seed = o.seed ?? 0;
    let step = 0;
    let stageIndex = 0;
    let stageStep = 0;
    let resumeDir: string | null = null;

    if (options.resume) {
      if (options.resume === true && !o.checkpoint)
        throw new TrainerConfigError('Trainer.fit: resume: true needs checkpoint.dir (or pass a checkpoint path)');
      resumeDir = options.resume === true ? await latestCheckpoint((o.checkpoint as { dir: string }).dir) : options.resume;
      if (resumeDir === null) this.#print(`No checkpoint in ${o.checkpoint?.dir}: starting a new run.`);
    }
    let state: TrainerState | null = null;
    if (resumeDir !== null) {
      state = await this.#checkResume(resumeDir);
      step = state.step;
      stageIndex = state.stageIndex;
      stageStep = state.stageStep;
      if (stageStep >= stages[stageIndex].steps) {
        stageIndex += 1;
        stageStep = 0;
      }
    }
    const until = options.until ?? Number.POSITIVE_INFINITY;
    if (options.until !== undefined) checkInt('Trainer.fit', 'until', options.until, 1);

    // Everything below may touch the model and data; every check above ran first.
    if (state !== null && resumeDir !== null) {
      const tensors = await readCheckpointTensors(resumeDir, 'model.safetensors');
      try {
        o.model.loadStateDict(tensors);
      } finally {
        tf.dispose(Object.values(tensors));
      }
      await o.data.restore(state.dataCursor);
      this.#guard.restore(state.guard);
      this.#recent = [...state.metrics.recent];
      this.#evals = [...state.metrics.evals];
      this.#print(
        `Resumed from ${resumeDir} at step ${step} (stage "${state.stage}", ${state.stageStep}/${stages[state.stageIndex].steps}).`,
      );
    }
    const records: StepRecord[] = [];
    const evals: EvalRecord[] = [];
    let lastCheckpoint: string | null = null;
    if (stageIndex >= stages.length || step >= until)
      return { step, skippedSteps: this.#guard.skipped, records, evals, checkpoint: resumeDir, stopped: false };
    if (signal?.aborted) return { step, skippedSteps: this.#guard.skipped, records, evals, checkpoint: resumeDir, stopped: true };

    const first = await o.data.next();
    if (first === undefined) {
      throw new DataSourceError(
        state
          ? `The data source gave no batch after restoring cursor ${JSON.stringify(state.dataCursor)}; it is exhausted.`
          : 'The data source is empty: its first next() gave no batch. Check the dataset path and filters.',
      );
    }
    this.#pending = [first];
    const metricsPath = o.metricsPath ?? (o.checkpoint ? join(o.checkpoint.dir, 'metrics.jsonl') : undefined);
    const log = metricsPath ? new MetricsLog(metricsPath) : null;
    const progress = createProgress(o.progress ?? 'auto', o.progressEvery ?? 50, this.#print);
    let stopped = false;
    let stopMessage = '';

    try {
      for (; stageIndex < stages.length && step < until && !stopped; stageIndex++, stageStep = 0) {
        const stage = stages[stageIndex];
        const sel = this.#selections[stageIndex];
        applyFreezing(o.model, sel);
        const gen = buildOptimizer(stage.optimizer, sel.groups);
        const disc = stage.discriminator
          ? buildOptimizer(
              { ...stage.optimizer, ...stage.discriminator.optimizer, kind: stage.discriminator.optimizer?.kind ?? stage.optimizer.kind },
              discriminatorGroups(sel.discriminator),
            )
          : null;
        try {
          if (state !== null && resumeDir !== null && state.stageIndex === stageIndex && stageStep > 0) {
            await this.#loadOptimizers(resumeDir, gen, disc);
          }
          progress.start(stage.name, stage.steps, stageStep);
          while (stageStep < stage.steps && step < until) {
            const record = await this.#step(stage, sel, gen, disc, step, stageStep, seed);
            step += 1;
            stageStep += 1;
            records.push(record);
            if (records.length > (o.keepRecords ?? 1000)) records.shift();
            this.#recent.push(record);
            if (this.#recent.length > 100) this.#recent.shift();
            if (log && (record.skipped || step % (o.logEvery ?? 1) === 0)) log.append(record);
            progress.update(record);
            o.onStep?.(record);
            if (record.skipped) {
              this.#print(
                `[${stage.name}] step ${stageStep}: non-finite loss or gradient, update skipped (${this.#guard.consecutive + 1} in a row)`,
              );
            }
            this.#guard.record(step, !record.skipped, `last: loss ${record.loss.total}, grad norm ${record.gradNorm}`);
            const stageDone = stageStep === stage.steps;
            if (stage.onEval && stage.evalEvery && (stageStep % stage.evalEvery === 0 || stageDone)) {
              const ctx = this.#ctx(stage, step, stageStep, 0, seed, 0);
              const metrics = await stage.onEval(ctx);
              const ev: EvalRecord = { type: 'eval', step, stage: stage.name, stageStep, metrics };
              evals.push(ev);
              this.#evals.push(ev);
              log?.append(ev);
            }
            if (signal) {
              // Steps on cpu and wasm never wait, so without this a SIGINT handler (or any timer)
              // would only run after the whole fit.
              await new Promise<void>((resolve) => setImmediate(resolve));
              const finished = step >= until || (stageDone && stageIndex === stages.length - 1);
              stopped = signal.aborted && !finished;
            }
            const every = o.checkpoint?.every ?? 0;
            if (o.checkpoint && (stageDone || step >= until || stopped || (every > 0 && step % every === 0))) {
              lastCheckpoint = await this.#save(stageIndex, step, stageStep, seed, gen, disc);
            }
            if (stopped) {
              stopMessage = `[${stage.name}] stopped at step ${stageStep}/${stage.steps}${o.checkpoint ? `; checkpoint ${lastCheckpoint}` : ' (no checkpoint: checkpoint.dir is not set)'}`;
              break;
            }
          }
        } finally {
          progress.stop();
          gen.dispose();
          disc?.dispose();
        }
      }
    } finally {
      this.#disposeBatches(this.#pending);
      this.#pending = [];
    }
    if (stopped) this.#print(stopMessage); // after the progress bar has stopped
    return { step, skippedSteps: this.#guard.skipped, records, evals, checkpoint: lastCheckpoint, stopped };
  }

  #ctx(stage: Stage<B>, step: number, stageStep: number, microStep: number, seed: number, role: 0 | 1): StepContext {
    return { stage: stage.name, step, stageStep, microStep, seed: stepSeed(seed, step, microStep, role), model: this.#o.model };
  }

  async #step(
    stage: Stage<B>,
    sel: StageSelection,
    gen: AdamW,
    disc: AdamW | null,
    step: number,
    stageStep: number,
    seed: number,
  ): Promise<StepRecord> {
    const started = performance.now();
    const n = stage.gradAccumulation ?? 1;
    const batches: B[] = [];
    const given: B[] = []; // as the data source returned them, when `prepare` replaced them
    try {
      while (batches.length < n) {
        const b = this.#pending.shift() ?? (await this.#o.data.next());
        if (b === undefined) {
          throw new DataSourceError(
            `The data source ran out at step ${step + 1} (stage "${stage.name}", step ${stageStep + 1}/${stage.steps}). Make it repeat (more epochs) or lower the stage's steps.`,
          );
        }
        if (stage.prepare) {
          given.push(b);
          batches.push(await stage.prepare(b, this.#ctx(stage, step, stageStep, batches.length, seed, 0)));
        } else {
          batches.push(b);
        }
      }
      const factor = learningRateFactor(stage.schedule ?? { kind: 'constant' }, stageStep, stage.steps);
      let d: Optimized | null = null;
      if (stage.discriminator && disc && step >= (stage.discriminator.startStep ?? 0)) {
        d = await this.#optimize(
          disc,
          sel.discriminator,
          stage.discriminator.loss,
          batches,
          (i) => this.#ctx(stage, step, stageStep, i, seed, 1),
          stage.clipNorm,
          factor,
        );
      }
      const g = await this.#optimize(
        gen,
        sel.generator,
        stage.loss,
        batches,
        (i) => this.#ctx(stage, step, stageStep, i, seed, 0),
        stage.clipNorm,
        factor,
      );
      const skipped = !g.finite || (d !== null && !d.finite);
      if (!skipped && stage.afterStep) await stage.afterStep(this.#ctx(stage, step, stageStep, 0, seed, 0));
      this.#disposeBatches(batches);
      this.#disposeBatches(given);
      batches.length = 0;
      given.length = 0;
      const record: StepRecord = {
        type: 'step',
        step: step + 1,
        stage: stage.name,
        stageStep: stageStep + 1,
        loss: g.losses,
        lr: resolveOptimizerOptions(stage.optimizer).lr * factor,
        gradNorm: g.gradNorm,
        stepMs: 0,
        numTensors: 0,
        skipped,
      };
      if (d) {
        record.discLoss = d.losses;
        record.discGradNorm = d.gradNorm;
      }
      if (g.stats) record.stats = g.stats;
      record.stepMs = performance.now() - started;
      record.numTensors = tf.memory().numTensors;
      return record;
    } finally {
      this.#disposeBatches(batches);
      this.#disposeBatches(given);
    }
  }

  /**
   * Accumulates gradients of `lossFn` over the micro-batches, reads the loss terms and the global
   * norm in one host sync, and applies the update only if all of them are finite.
   */
  async #optimize(
    opt: AdamW,
    params: NamedVariables,
    lossFn: LossFn<B>,
    batches: B[],
    ctxAt: (microStep: number) => StepContext,
    clipNorm: number | undefined,
    factor: number,
  ): Promise<Optimized> {
    const n = batches.length;
    const vars = params.map(([, v]) => v);
    const nameOf = new Map(params.map(([name, v]) => [v.name, name]));
    let acc: Record<string, tf.Tensor> = {};
    let sums: tf.Tensor | null = null;
    let names: string[] | null = null;
    let stats: Record<string, number> | undefined;
    try {
      for (let i = 0; i < n; i++) {
        const ctx = ctxAt(i);
        let packed: tf.Tensor | null = null;
        let grads: tf.NamedTensorMap;
        try {
          grads = tf.tidy(() => {
            const r = tf.variableGrads(() => {
              const out = lossFn(batches[i], ctx);
              if (!out || !(out.total instanceof tf.Tensor) || out.total.rank !== 0) {
                throw new TrainerConfigError(
                  `stage "${ctx.stage}": the loss must return { total: scalar tensor, components? }, got total ${out?.total instanceof tf.Tensor ? `of shape [${out.total.shape}]` : String(out?.total)}`,
                );
              }
              const comps = out.components ?? {};
              const keys = Object.keys(comps);
              if (names === null) names = keys;
              else if (keys.join('\u0000') !== names.join('\u0000')) {
                throw new TrainerConfigError(
                  `stage "${ctx.stage}": loss components changed between micro-batches ([${names}] then [${keys}])`,
                );
              }
              stats = out.stats;
              packed = tf.keep(tf.stack([out.total, ...keys.map((k) => comps[k])])); // [1 + K]
              return n > 1 ? (tf.div(out.total, n) as tf.Scalar) : out.total;
            }, vars);
            return r.grads;
          });
        } catch (e) {
          if (packed) (packed as tf.Tensor).dispose();
          throw e;
        }
        const p = packed as unknown as tf.Tensor;
        const prevSums: tf.Tensor | null = sums;
        sums = prevSums ? tf.add(prevSums, p) : p;
        if (prevSums) {
          prevSums.dispose();
          p.dispose();
        }
        const next: Record<string, tf.Tensor> = { ...acc };
        for (const [varName, gr] of Object.entries(grads)) {
          const name = nameOf.get(varName) as string;
          if (next[name]) {
            const old = next[name];
            next[name] = tf.add(old, gr);
            old.dispose();
            gr.dispose();
          } else {
            next[name] = gr;
          }
        }
        acc = next;
      }
      if (Object.keys(acc).length === 0) {
        throw new TrainerConfigError(
          `stage "${ctxAt(0).stage}": the loss does not depend on any of the ${params.length} parameters being trained; check "trainable" and the loss function`,
        );
      }
      const { grads: clipped, norm } = clipNorm !== undefined ? clipByGlobalNorm(acc, clipNorm) : { grads: acc, norm: globalNorm(acc) };
      try {
        // Input checks queued where reads are asynchronous (WebGPU): a bad batch stops the step
        // here, before the update.
        await settleHostChecks();
        const summary = tf.tidy(() => tf.concat([tf.div(sums as tf.Tensor, n), tf.reshape(norm, [1])]));
        const values = Array.from(await summary.data());
        summary.dispose();
        const gradNorm = values[values.length - 1];
        const losses: Record<string, number> = { total: values[0] };
        (names ?? []).forEach((k, j) => {
          losses[k] = values[1 + j];
        });
        const finite = values.every(Number.isFinite);
        if (finite) {
          opt.scaleLearningRate(factor);
          opt.step(clipped);
        }
        return { finite, losses, gradNorm, stats };
      } finally {
        norm.dispose();
        if (clipped !== acc) tf.dispose(Object.values(clipped));
      }
    } finally {
      tf.dispose(Object.values(acc));
      sums?.dispose();
    }
  }

  #disposeBatches(batches: B[]): void {
    if (this.#o.disposeBatches === false) return;
    for (const b of batches) tf.dispose(b as unknown as tf.TensorContainer);
  }

  async #save(stageIndex: number, step: number, stageStep: number, seed: number, gen: AdamW, disc: AdamW | null): Promise<string> {
    const o = this.#o;
    const optimizer: Record<string, tf.Tensor> = {};
    for (const [k, t] of Object.entries(gen.stateDict())) optimizer[`generator.${k}`] = t;
    if (disc) for (const [k, t] of Object.entries(disc.stateDict())) optimizer[`discriminator.${k}`] = t;
    try {
      const trainer: TrainerState = {
        format: 'ettjs-trainer',
        version: 1,
        step,
        stage: o.stages[stageIndex].name,
        stageIndex,
        stageStep,
        stages: o.stages.map((s) => s.name),
        seed,
        dataCursor: o.data.cursor(),
        guard: { consecutive: this.#guard.consecutive, skipped: this.#guard.skipped },
        metrics: { recent: this.#recent, evals: this.#evals },
        savedAt: new Date().toISOString(),
      };
      const ck = o.checkpoint as { dir: string; keepLast?: number };
      return await writeCheckpoint(
        ck.dir,
        { config: o.modelConfig ?? {}, model: o.model, optimizer, trainer },
        { keepLast: ck.keepLast ?? 3 },
      );
    } finally {
      tf.dispose(Object.values(optimizer));
    }
  }

  async #loadOptimizers(dir: string, gen: AdamW, disc: AdamW | null): Promise<void> {
    const tensors = await readCheckpointTensors(dir, 'optimizer.safetensors');
    try {
      const part = (prefix: string) =>
        Object.fromEntries(
          Object.entries(tensors)
            .filter(([k]) => k.startsWith(prefix))
            .map(([k, t]) => [k.slice(prefix.length), t]),
        );
      gen.loadStateDict(part('generator.'));
      if (disc) disc.loadStateDict(part('discriminator.'));
    } finally {
      tf.dispose(Object.values(tensors));
    }
  }

  /** Every check a resume needs, before anything is loaded. */
  async #checkResume(dir: string): Promise<TrainerState> {
    const o = this.#o;
    const { config, trainer } = await readCheckpointMeta(dir);
    const diffs = jsonDifferences(config, o.modelConfig ?? {});
    const names = o.stages.map((s) => s.name);
    if (trainer.stageIndex >= names.length || names[trainer.stageIndex] !== trainer.stage) {
      diffs.push(
        `stages: the checkpoint was saved in stage ${trainer.stageIndex} "${trainer.stage}" of [${trainer.stages.join(', ')}]; this run's stages are [${names.join(', ')}]`,
      );
    }
    if (trainer.seed !== (o.seed ?? 0)) diffs.push(`seed: checkpoint has ${trainer.seed}, this run has ${o.seed ?? 0}`);
    const shapes = await readModelShapes(dir);
    const own = o.model.stateDict();
    for (const [name, t] of Object.entries(own)) {
      const s = shapes[name];
      if (!s) diffs.push(`model tensor "${name}" [${t.shape}] is missing from the checkpoint`);
      else if (!tf.util.arraysEqual(s, t.shape)) diffs.push(`model tensor "${name}": checkpoint has [${s}], this model has [${t.shape}]`);
    }
    for (const name of Object.keys(shapes))
      if (!own[name]) diffs.push(`model tensor "${name}" [${shapes[name]}] is in the checkpoint but not in this model`);
    if (diffs.length > 0) throw new CheckpointMismatchError(dir, diffs.slice(0, 30));
    if (!Number.isInteger(trainer.step) || !Number.isInteger(trainer.stageStep))
      throw new CheckpointError(`${dir}/trainer.json has no valid step counts`);
    return trainer;
  }
}
