import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Toy as ToyModel, Toy, ToySource, criticLoss, ganGeneratorLoss, mseLoss, snapshot } from '../test/toy';
import { CheckpointMismatchError, type StepRecord, latestCheckpoint, listCheckpoints } from './checkpoint';
import { DataSourceError } from './data-source';
import { TrainingDivergedError } from './non-finite-guard';
import type { Stage } from './stage';
import type { ToyBatch } from '../test/toy';
import { Trainer } from './trainer';
import { TrainerConfigError } from './trainer-config-error';
import { learningRateFactor } from './schedule';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ettjs-trainer-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const quiet = { progress: 'none' as const, print: () => {} };

/** Two stages: the first layer alone, then everything with a critic, warmup + cosine, accumulation and clipping. */
function twoStages(model: ToyModel): Stage<ToyBatch>[] {
  return [
    { name: 'warm', steps: 5, trainable: ['net.l1'], loss: mseLoss(model), optimizer: { kind: 'adam', lr: 0.01, betas: [0.5, 0.9] } },
    {
      name: 'main',
      steps: 9,
      trainable: ['net'],
      loss: ganGeneratorLoss(model),
      optimizer: { kind: 'adamw', lr: 0.02, weightDecay: 0.1 },
      schedule: { kind: 'warmup-cosine', warmupSteps: 2, minLrRatio: 0.1 },
      gradAccumulation: 2,
      clipNorm: 0.5,
      groups: [{ name: 'head', modules: ['net.l2'], lr: 0.005 }],
      discriminator: { module: 'critic', loss: criticLoss(model), optimizer: { kind: 'adam', lr: 0.01, betas: [0.5, 0.9] } },
    },
  ];
}

/** The uninterrupted two-stage run (seed 5) that interrupted and resumed runs must reproduce. */
async function uninterrupted(dir: string): Promise<{ model: ToyModel; records: StepRecord[] }> {
  const model = new Toy(1);
  const { records } = await new Trainer({
    model,
    data: new ToySource(),
    stages: twoStages(model),
    checkpoint: { dir: join(root, dir) },
    seed: 5,
    ...quiet,
  }).fit();
  return { model, records };
}

/** A step record without its timing and tensor count, which differ between runs of the same steps. */
const strip = (r: StepRecord) => ({ ...r, stepMs: 0, numTensors: 0 });

describe('Trainer', () => {
  it('trains: the loss of a small regression falls', async () => {
    const model = new Toy(1);
    const trainer = new Trainer({
      model,
      data: new ToySource(),
      stages: [{ name: 'fit', steps: 60, trainable: ['net'], loss: mseLoss(model), optimizer: { kind: 'adamw', lr: 0.03 } }],
      ...quiet,
    });
    const { records } = await trainer.fit();
    const mean = (rs: typeof records) => rs.reduce((s, r) => s + r.loss.mse, 0) / rs.length;
    expect(records).toHaveLength(60);
    expect(mean(records.slice(-10))).toBeLessThan(0.5 * mean(records.slice(0, 10)));
    model.dispose();
  });

  it('resumes exactly: k steps, crash, resume to N gives the losses and weights of an uninterrupted run', async () => {
    const { model: modelA, ...a } = await uninterrupted('uninterrupted');
    expect(a.records).toHaveLength(14);

    const dirB = join(root, 'interrupted');
    const modelB = new Toy(1);
    const crash = new Error('simulated crash');
    const stepsBefore: typeof a.records = [];
    const first = new Trainer({
      model: modelB,
      data: new ToySource(),
      stages: twoStages(modelB),
      checkpoint: { dir: dirB, every: 3 },
      seed: 5,
      onStep: (r) => {
        stepsBefore.push(r);
        if (r.step === 11) throw crash; // after the checkpoint at step 9, mid-stage "main"
      },
      ...quiet,
    });
    await expect(first.fit()).rejects.toBe(crash);
    modelB.dispose();

    // A new process would build a fresh model (a different init here) and a fresh data source.
    const modelC = new Toy(99);
    const c = await new Trainer({
      model: modelC,
      data: new ToySource(),
      stages: twoStages(modelC),
      checkpoint: { dir: dirB, every: 3 },
      seed: 5,
      ...quiet,
    }).fit({
      resume: true,
    });
    expect(c.records.map((r) => r.step)).toEqual([10, 11, 12, 13, 14]);
    expect(stepsBefore.slice(0, 9).map(strip)).toEqual(a.records.slice(0, 9).map(strip));
    expect(c.records.map(strip)).toEqual(a.records.slice(9).map(strip));
    expect(await snapshot(modelC)).toEqual(await snapshot(modelA));
    modelA.dispose();
    modelC.dispose();
  });

  it('until stops with a checkpoint, and resuming a finished run does nothing', async () => {
    const dir = join(root, 'until');
    const model = new Toy(1);
    const stages = [{ name: 's', steps: 6, trainable: ['net'], loss: mseLoss(model), optimizer: { kind: 'adamw' as const, lr: 0.01 } }];
    const r1 = await new Trainer({ model, data: new ToySource(), stages, checkpoint: { dir }, ...quiet }).fit({ until: 4 });
    expect(r1.step).toBe(4);
    expect(r1.checkpoint).toBe(join(dir, 'step-00000004'));
    const r2 = await new Trainer({ model, data: new ToySource(), stages, checkpoint: { dir }, ...quiet }).fit({ resume: true });
    expect(r2.records.map((r) => r.step)).toEqual([5, 6]);
    const r3 = await new Trainer({ model, data: new ToySource(), stages, checkpoint: { dir }, ...quiet }).fit({ resume: true });
    expect(r3.records).toEqual([]);
    model.dispose();
  });

  it('stops cleanly on an aborted signal: the step finishes, a checkpoint is written, resume matches an uninterrupted run', async () => {
    const { model: modelA, ...a } = await uninterrupted('signal-uninterrupted');

    const dir = join(root, 'signal');
    const modelB = new Toy(1);
    const controller = new AbortController();
    const lines: string[] = [];
    const b = await new Trainer({
      model: modelB,
      data: new ToySource(),
      stages: twoStages(modelB),
      checkpoint: { dir, every: 100 },
      seed: 5,
      onStep: (r) => {
        if (r.step === 7) controller.abort(); // mid-stage "main", no periodic checkpoint due
      },
      progress: 'none',
      print: (l) => lines.push(l),
    }).fit({ signal: controller.signal });
    expect(b).toMatchObject({ step: 7, stopped: true, checkpoint: join(dir, 'step-00000007') });
    expect(b.records.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(lines.at(-1)).toBe(`[main] stopped at step 2/9; checkpoint ${join(dir, 'step-00000007')}`);
    expect(await latestCheckpoint(dir)).toBe(join(dir, 'step-00000007'));
    modelB.dispose();

    const modelC = new Toy(99);
    const c = await new Trainer({
      model: modelC,
      data: new ToySource(),
      stages: twoStages(modelC),
      checkpoint: { dir },
      seed: 5,
      ...quiet,
    }).fit({
      resume: true,
      signal: new AbortController().signal,
    });
    expect(c.stopped).toBe(false);
    expect(c.records.map(strip)).toEqual(a.records.slice(7).map(strip));
    expect(await snapshot(modelC)).toEqual(await snapshot(modelA));
    modelA.dispose();
    modelC.dispose();
  });

  it('lets the event loop run between steps when given a signal, so a timer (or SIGINT handler) can stop a synchronous run', async () => {
    const model = new Toy(1);
    const stages = [{ name: 's', steps: 50, trainable: ['net'], loss: mseLoss(model), optimizer: { kind: 'adamw' as const, lr: 0.01 } }];
    const controller = new AbortController();
    let steps = 0;
    setImmediate(() => controller.abort()); // fires at the first chance the loop gives
    const r = await new Trainer({ model, data: new ToySource(), stages, onStep: () => steps++, ...quiet }).fit({
      signal: controller.signal,
    });
    expect(r.stopped).toBe(true);
    expect(r.checkpoint).toBeNull(); // no checkpoint.dir
    expect(steps).toBeLessThan(50);
    expect(r.step).toBe(steps);
    // An abort with the last step of the run is not a stop: the run is complete.
    const last = new AbortController();
    const done = await new Trainer({
      model,
      data: new ToySource(),
      stages: [{ ...stages[0]!, steps: 3 }],
      onStep: (rec) => rec.step === 3 && last.abort(),
      ...quiet,
    }).fit({ signal: last.signal });
    expect(done).toMatchObject({ step: 3, stopped: false });
    // Already aborted: no step at all; anything else is refused.
    const none = await new Trainer({ model, data: new ToySource(), stages, ...quiet }).fit({ signal: AbortSignal.abort() });
    expect(none).toMatchObject({ step: 0, stopped: true });
    await expect(new Trainer({ model, data: new ToySource(), stages, ...quiet }).fit({ signal: {} as AbortSignal })).rejects.toThrow(
      /signal must be an AbortSignal/,
    );
    model.dispose();
  });

  it('keeps the most recent keepRecords step records (a long run stays flat in memory), every step still reported', async () => {
    const model = new Toy(1);
    const stages = [{ name: 's', steps: 7, trainable: ['net'], loss: mseLoss(model), optimizer: { kind: 'adamw' as const, lr: 0.01 } }];
    const seen: number[] = [];
    const r = await new Trainer({ model, data: new ToySource(), stages, keepRecords: 3, onStep: (x) => seen.push(x.step), ...quiet }).fit();
    expect(r.step).toBe(7);
    expect(r.records.map((x) => x.step)).toEqual([5, 6, 7]);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const all = await new Trainer({ model, data: new ToySource(), stages, keepRecords: Number.POSITIVE_INFINITY, ...quiet }).fit();
    expect(all.records).toHaveLength(7);
    expect(() => new Trainer({ model, data: new ToySource(), stages, keepRecords: -1, ...quiet })).toThrow(
      /keepRecords must be an integer >= 0/,
    );
    model.dispose();
  });

  it('leaks nothing: numTensors is identical after every one of 200 steps (critic, accumulation, clipping)', async () => {
    const model = new Toy(2);
    const counts: number[] = [];
    const before = tf.memory().numTensors;
    const stages: Stage<ToyBatch>[] = [
      {
        name: 'gan',
        steps: 200,
        trainable: ['net'],
        loss: ganGeneratorLoss(model),
        optimizer: { kind: 'adamw', lr: 1e-3 },
        schedule: { kind: 'warmup-cosine' },
        gradAccumulation: 2,
        clipNorm: 1,
        discriminator: { module: 'critic', loss: criticLoss(model) },
        afterStep: () => tf.tidy(() => void tf.add(1, 2)),
      },
    ];
    await new Trainer({ model, data: new ToySource(2), stages, onStep: (r) => counts.push(r.numTensors), ...quiet }).fit();
    expect(counts).toHaveLength(200);
    expect(new Set(counts).size).toBe(1);
    // The optimizers' moments are freed with the stage: only the model is left.
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('steps the discriminator first, on the same batches, and only from startStep', async () => {
    const model = new Toy(3);
    const calls: string[] = [];
    const g = ganGeneratorLoss(model);
    const d = criticLoss(model);
    const stages: Stage<ToyBatch>[] = [
      {
        name: 'gan',
        steps: 3,
        trainable: ['*'],
        loss: (b, ctx) => {
          calls.push(`g${b.index}`);
          return g(b, ctx);
        },
        optimizer: { kind: 'adam', lr: 1e-3 },
        gradAccumulation: 2,
        discriminator: {
          module: 'critic',
          startStep: 1,
          loss: (b, ctx) => {
            calls.push(`d${b.index}`);
            return d(b, ctx);
          },
        },
      },
    ];
    const { records } = await new Trainer({ model, data: new ToySource(), stages, ...quiet }).fit();
    expect(calls).toEqual(['g0', 'g1', 'd2', 'd3', 'g2', 'g3', 'd4', 'd5', 'g4', 'g5']);
    expect(records[0].discLoss).toBeUndefined();
    expect(Object.keys(records[1].discLoss ?? {})).toEqual(['total', 'hinge']);
    model.dispose();
  });

  it('gradient accumulation over two half-batches equals one step on the whole batch', async () => {
    const run = async (batchSize: number, accumulation: number) => {
      const model = new Toy(4);
      const stages: Stage<ToyBatch>[] = [
        {
          name: 's',
          steps: 1,
          trainable: ['net'],
          loss: mseLoss(model),
          optimizer: { kind: 'adamw', lr: 0.1 },
          gradAccumulation: accumulation,
        },
      ];
      // Two batches of 2 rows are rows 0-1 and 2-3 of one batch of 4 only if the source slices one stream: build it so.
      const whole = new ToySource(4);
      const data = {
        parts: [] as ToyBatch[],
        next(): ToyBatch | undefined {
          if (batchSize === 4) return whole.next();
          if (this.parts.length === 0) {
            const b = whole.next() as ToyBatch;
            const [x1, x2] = tf.split(b.x, 2);
            const [y1, y2] = tf.split(b.y, 2);
            tf.dispose([b.x, b.y]);
            this.parts.push(
              { x: x1 as tf.Tensor2D, y: y1 as tf.Tensor2D, index: 0 },
              { x: x2 as tf.Tensor2D, y: y2 as tf.Tensor2D, index: 1 },
            );
          }
          return this.parts.shift();
        },
        cursor: () => null,
        restore: () => {},
      };
      await new Trainer({ model, data, stages, ...quiet }).fit();
      const s = await snapshot(model);
      model.dispose();
      return s;
    };
    const one = await run(4, 1);
    const two = await run(2, 2);
    for (const k of Object.keys(one)) for (let i = 0; i < one[k].length; i++) expect(two[k][i]).toBeCloseTo(one[k][i], 6);
  });

  it('clips the global gradient norm (Adam with a huge eps moves by about clippedGrad/eps)', async () => {
    const move = async (clipNorm?: number) => {
      const model = new Toy(5);
      const before = await snapshot(model);
      const stages: Stage<ToyBatch>[] = [
        { name: 's', steps: 1, trainable: ['net'], loss: mseLoss(model), optimizer: { kind: 'adam', lr: 1, eps: 1e4 }, clipNorm },
      ];
      const { records } = await new Trainer({ model, data: new ToySource(), stages, ...quiet }).fit();
      const after = await snapshot(model);
      let sq = 0;
      for (const k of Object.keys(before)) for (let i = 0; i < before[k].length; i++) sq += (after[k][i] - before[k][i]) ** 2;
      model.dispose();
      return { delta: Math.sqrt(sq) * 1e4, gradNorm: records[0].gradNorm };
    };
    const free = await move();
    expect(free.delta).toBeCloseTo(free.gradNorm, 2);
    const clipped = await move(0.1);
    expect(clipped.gradNorm).toBeCloseTo(free.gradNorm, 5); // the record keeps the pre-clip norm
    expect(clipped.delta).toBeCloseTo(0.1, 3);
  });

  it('follows the schedule: the logged lr is base × warmup-cosine factor', async () => {
    const model = new Toy(6);
    const schedule = { kind: 'warmup-cosine' as const, warmupRatio: 0.25, minLrRatio: 0.2 };
    const stages: Stage<ToyBatch>[] = [
      { name: 's', steps: 8, trainable: ['net'], loss: mseLoss(model), optimizer: { kind: 'adamw', lr: 0.5 }, schedule },
    ];
    const { records } = await new Trainer({ model, data: new ToySource(), stages, ...quiet }).fit();
    expect(records.map((r) => r.lr)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((s) => 0.5 * learningRateFactor(schedule, s, 8)));
    model.dispose();
  });
});

describe('NaN/Inf guard', () => {
  it('skips a step with a NaN loss (weights untouched), reports it, and carries on', async () => {
    const model = new Toy(7);
    const base = mseLoss(model);
    const weights: number[][] = [];
    const lines: string[] = [];
    const stages: Stage<ToyBatch>[] = [
      {
        name: 's',
        steps: 4,
        trainable: ['net'],
        optimizer: { kind: 'adamw', lr: 0.01 },
        loss: (b, ctx) => {
          const out = base(b, ctx);
          if (b.index !== 1) return out;
          return { total: tf.mul(out.total, Number.NaN) as tf.Scalar, components: out.components };
        },
      },
    ];
    const { records, skippedSteps } = await new Trainer({
      model,
      data: new ToySource(),
      stages,
      progress: 'none',
      print: (l) => lines.push(l),
      onStep: () => weights.push(Array.from(model.net.l1.weight.dataSync())),
    }).fit();
    expect(records.map((r) => r.skipped)).toEqual([false, true, false, false]);
    expect(Number.isNaN(records[1].loss.total)).toBe(true);
    expect(skippedSteps).toBe(1);
    expect(weights[1]).toEqual(weights[0]);
    expect(weights[2]).not.toEqual(weights[1]);
    expect(lines.some((l) => /step 2: non-finite loss or gradient, update skipped \(1 in a row\)/.test(l))).toBe(true);
    model.dispose();
  });

  it('skips a step whose loss is finite but whose gradient is Inf', async () => {
    const model = new Toy(8);
    const before = await snapshot(model);
    const stages: Stage<ToyBatch>[] = [
      {
        name: 's',
        steps: 1,
        trainable: ['net'],
        optimizer: { kind: 'adamw', lr: 0.01 },
        // sqrt at 0: value 0, derivative Inf.
        loss: () => ({ total: tf.sqrt(tf.mul(tf.sum(model.net.l1.weight), 0)) as tf.Scalar }),
      },
    ];
    const { records } = await new Trainer({ model, data: new ToySource(), stages, ...quiet }).fit();
    expect(records[0].loss.total === 0).toBe(true);
    expect(records[0].gradNorm).not.toBeLessThan(Number.POSITIVE_INFINITY);
    expect(records[0].skipped).toBe(true);
    expect(await snapshot(model)).toEqual(before);
    model.dispose();
  });

  it('stops after maxBadSteps consecutive bad steps with a clear message', async () => {
    const model = new Toy(9);
    const stages: Stage<ToyBatch>[] = [
      {
        name: 's',
        steps: 10,
        trainable: ['net'],
        optimizer: { kind: 'adamw', lr: 0.01 },
        loss: () => ({ total: tf.mul(tf.sum(model.net.gain), Number.NaN) as tf.Scalar }),
      },
    ];
    const trainer = new Trainer({ model, data: new ToySource(), stages, maxBadSteps: 3, ...quiet });
    const err = await trainer.fit().catch((e) => e);
    expect(err).toBeInstanceOf(TrainingDivergedError);
    expect(err.message).toMatch(/stopped at step 3: 3 consecutive step\(s\) had a non-finite loss or gradient .*Lower the learning rate/);
    model.dispose();
  });
});

describe('bad input fails before the first step', () => {
  const never = () => {
    throw new Error('the loss must not run');
  };

  it('an empty dataset', async () => {
    const model = new Toy(1);
    const stages: Stage<ToyBatch>[] = [{ name: 's', steps: 3, trainable: ['net'], loss: never, optimizer: { kind: 'adamw', lr: 0.01 } }];
    await expect(new Trainer({ model, data: new ToySource(4, 0), stages, ...quiet }).fit()).rejects.toThrow(DataSourceError);
    await expect(new Trainer({ model, data: new ToySource(4, 0), stages, ...quiet }).fit()).rejects.toThrow(/data source is empty/);
    // Running out later is also a clear error, naming the step.
    const short: Stage<ToyBatch>[] = [
      { name: 's', steps: 3, trainable: ['net'], loss: mseLoss(model), optimizer: { kind: 'adamw', lr: 0.01 } },
    ];
    await expect(new Trainer({ model, data: new ToySource(4, 2), stages: short, ...quiet }).fit()).rejects.toThrow(
      /ran out at step 3 \(stage "s", step 3\/3\)/,
    );
    model.dispose();
  });

  it('a stage that trains nothing', () => {
    const model = new Toy(1);
    const stage = (s: Partial<Stage<ToyBatch>>): Stage<ToyBatch> => ({
      name: 'empty',
      steps: 3,
      trainable: ['net'],
      loss: never,
      optimizer: { kind: 'adamw', lr: 0.01 },
      ...s,
    });
    expect(() => new Trainer({ model, data: new ToySource(), stages: [stage({ frozen: ['net'] })], ...quiet })).toThrow(TrainerConfigError);
    expect(() => new Trainer({ model, data: new ToySource(), stages: [stage({ frozen: ['net'] })], ...quiet })).toThrow(
      /stage 0 \("empty"\) trains nothing/,
    );
    expect(() => new Trainer({ model, data: new ToySource(), stages: [stage({ trainable: [] })], ...quiet })).toThrow(
      /trainable must be a non-empty array/,
    );
    expect(() => new Trainer({ model, data: new ToySource(), stages: [stage({ trainable: ['nett'] })], ...quiet })).toThrow(
      /no child "nett" in Toy \(children: net, critic\)/,
    );
    const stray = new Toy(2);
    expect(() => new Trainer({ model, data: new ToySource(), stages: [stage({ trainable: [stray.net] })], ...quiet })).toThrow(
      /Net instance is not part of the model/,
    );
    stray.dispose();
    model.dispose();
  });

  it('unknown keys anywhere in the config', () => {
    const model = new Toy(1);
    const ok: Stage<ToyBatch> = { name: 's', steps: 3, trainable: ['net'], loss: never, optimizer: { kind: 'adamw', lr: 0.01 } };
    const make = (o: object) => () => new Trainer({ model, data: new ToySource(), stages: [ok], ...quiet, ...o } as never);
    expect(make({ epochs: 3 })).toThrow(/Trainer: unknown key\(s\) "epochs"/);
    expect(make({ stages: [{ ...ok, gradAccum: 2 }] })).toThrow(
      /stage 0 \("s"\): unknown key\(s\) "gradAccum"\. Known keys: .*gradAccumulation/,
    );
    expect(make({ stages: [{ ...ok, optimizer: { kind: 'adamw', lr: 1, beta1: 0.5 } }] })).toThrow(/optimizer: unknown key\(s\) "beta1"/);
    expect(make({ stages: [{ ...ok, schedule: { kind: 'warmup-cosine', warmupRatoi: 0.1 } }] })).toThrow(
      /schedule: unknown key\(s\) "warmupRatoi"/,
    );
    expect(make({ checkpoint: { dir: root, keep: 2 } })).toThrow(/checkpoint: unknown key\(s\) "keep"/);
    expect(make({ stages: [{ ...ok, optimizer: { kind: 'adam', lr: 1, weightDecay: 0.1 } }] })).toThrow(/kind 'adam' has no weight decay/);
    expect(make({ stages: [ok, ok] })).toThrow(/two stages are named "s"/);
    model.dispose();
  });

  it('a checkpoint from a different model config (weights and data untouched)', async () => {
    const dir = join(root, 'mismatch');
    const small = new Toy(1, 8);
    const stagesFor = (m: ToyModel): Stage<ToyBatch>[] => [
      { name: 's', steps: 2, trainable: ['net'], loss: mseLoss(m), optimizer: { kind: 'adamw', lr: 0.01 } },
    ];
    await new Trainer({
      model: small,
      data: new ToySource(),
      stages: stagesFor(small),
      modelConfig: { hidden: 8 },
      checkpoint: { dir },
      ...quiet,
    }).fit();
    small.dispose();
    const big = new Toy(1, 16);
    const before = await snapshot(big);
    const data = new ToySource();
    const err = await new Trainer({
      model: big,
      data,
      stages: [{ ...stagesFor(big)[0], loss: never }],
      modelConfig: { hidden: 16 },
      checkpoint: { dir },
      ...quiet,
    })
      .fit({ resume: true })
      .catch((e) => e);
    expect(err).toBeInstanceOf(CheckpointMismatchError);
    expect(err.message).toMatch(/config\.hidden: checkpoint has 8, this run has 16/);
    expect(err.message).toMatch(/model tensor "net\.l1\.weight": checkpoint has \[4,8\], this model has \[4,16\]/);
    expect(await snapshot(big)).toEqual(before);
    expect(data.index).toBe(0);
    big.dispose();
  });
});

describe('checkpoints and logs', () => {
  it('keeps the last N checkpoints, points latest at the newest, and writes every file', async () => {
    const dir = join(root, 'keep');
    const model = new Toy(1);
    const stages: Stage<ToyBatch>[] = [
      { name: 's', steps: 5, trainable: ['net'], loss: mseLoss(model), optimizer: { kind: 'adamw', lr: 0.01 } },
    ];
    await new Trainer({
      model,
      data: new ToySource(),
      stages,
      checkpoint: { dir, every: 1, keepLast: 2 },
      modelConfig: { hidden: 8 },
      ...quiet,
    }).fit();
    expect((await listCheckpoints(dir)).map((p) => p.slice(dir.length + 1))).toEqual(['step-00000004', 'step-00000005']);
    expect(await latestCheckpoint(dir)).toBe(join(dir, 'step-00000005'));
    expect((await readdir(join(dir, 'step-00000005'))).sort()).toEqual([
      'config.json',
      'model.safetensors',
      'optimizer.safetensors',
      'trainer.json',
    ]);
    const state = JSON.parse(await readFile(join(dir, 'step-00000005', 'trainer.json'), 'utf8'));
    expect(state).toMatchObject({ step: 5, stage: 's', stageStep: 5, dataCursor: { index: 5 }, seed: 0, stages: ['s'] });
    expect(state.metrics.recent).toHaveLength(5);
    expect(JSON.parse(await readFile(join(dir, 'step-00000005', 'config.json'), 'utf8'))).toEqual({ hidden: 8 });
    expect((await readdir(dir)).filter((e) => e.startsWith('.'))).toEqual([]);
    model.dispose();
  });

  it('writes a JSONL metrics log with every loss component, evals, and plain progress lines', async () => {
    const dir = join(root, 'metrics');
    const model = new Toy(1);
    const lines: string[] = [];
    const stages: Stage<ToyBatch>[] = [
      {
        name: 'fit',
        steps: 6,
        trainable: ['net'],
        loss: mseLoss(model),
        optimizer: { kind: 'adamw', lr: 0.01 },
        evalEvery: 4,
        onEval: (ctx) => ({ evalStep: ctx.stageStep }),
      },
    ];
    await new Trainer({
      model,
      data: new ToySource(),
      stages,
      metricsPath: join(dir, 'm.jsonl'),
      progress: 'lines',
      progressEvery: 3,
      print: (l) => lines.push(l),
    }).fit();
    const log = (await readFile(join(dir, 'm.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(log.map((r) => r.type)).toEqual(['step', 'step', 'step', 'step', 'eval', 'step', 'step', 'eval']);
    expect(log[0]).toMatchObject({ step: 1, stage: 'fit', stageStep: 1, lr: 0.01, skipped: false, stats: { batch: 0 } });
    expect(Object.keys(log[0].loss)).toEqual(['total', 'mse', 'l2']);
    expect(log[0].loss.total).toBeCloseTo(log[0].loss.mse + log[0].loss.l2, 5);
    for (const k of ['gradNorm', 'stepMs', 'numTensors']) expect(typeof log[0][k]).toBe('number');
    expect(log[4]).toEqual({ type: 'eval', step: 4, stage: 'fit', stageStep: 4, metrics: { evalStep: 4 } });
    expect(lines[0]).toBe('[fit] starting at step 0/6');
    expect(lines.slice(1).map((l) => l.replace(/ \|.*/, '').replace(/ loss .*/, ''))).toEqual(['[fit] step 3/6', '[fit] step 6/6']);
    expect(lines[1]).toMatch(/loss \d\.\d{4} lr 0\.0100 gnorm .* s\/step, ETA \d+m\d\ds$/);
    model.dispose();
  });

  it('drives a cli-progress bar in bar mode without disturbing training', async () => {
    const model = new Toy(1);
    const stages: Stage<ToyBatch>[] = [
      { name: 'bar', steps: 3, trainable: ['net'], loss: mseLoss(model), optimizer: { kind: 'adamw', lr: 0.01 } },
    ];
    const { records } = await new Trainer({ model, data: new ToySource(), stages, progress: 'bar' }).fit();
    expect(records).toHaveLength(3);
    model.dispose();
  });
});
