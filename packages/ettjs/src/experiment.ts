import fs from 'node:fs';
import path from 'node:path';
import { AutoregressiveLM, ByteTokenizer, type LMConfig } from '@ettjs/autoregressive-lm';
import { initBackend } from '@ettjs/backend';
import { type Module, settleHostChecks } from '@ettjs/core';
import { CaptionEncoder, DataLoader, encodePng, imageGrid, type SyntheticConfig, SyntheticTextImages } from '@ettjs/data';
import type { PatchDiscriminatorConfig } from '@ettjs/losses';
import { createVisualAdapter } from '@ettjs/projector';
import { type DataSource, type Schedule, type Stage, Trainer } from '@ettjs/trainer';
import { VQ_TOKENIZER_TINY, VQTokenizer, type VQTokenizerConfig } from '@ettjs/vector-quantizer';
import * as tf from '@tensorflow/tfjs-core';
import { GanCritic } from './critic';
import { ETTModel } from './ett-model';
import { type EvalReport, type EvalSample, evaluateModel } from './evaluate';
import {
  type Arm,
  alignment,
  type ETTBatch,
  postTrainingGen,
  type RecipeOptions,
  semantic,
  textPretraining,
  tokenizerPretraining,
} from './recipes';
import { chanceLevels, describeArmDifference, FIELD_LABELS, FIELDS, type FieldScores, fieldsAtChance } from './field-scores';
import { type AccuracyCurve, type MetricRecord, type ReportImage, readMetricsLog, writeReport } from './report';

/** A run of the ETT recipe on the embedded synthetic data: stage 0 → 1 → 2 (→ 3 for generation) for each arm. */
export interface ExperimentConfig {
  /** Run seed (init, data order). Defaults to 0. */
  seed: number;
  /** Output directory: checkpoints, metrics, report. Defaults to `runs/ett`. */
  runDir: string;
  /** Arms compared after the shared stages 0–1. Defaults to `['frozen-embedding', 'ett']`. */
  arms: Arm[];
  /** α of `L_cap + α·L_vq` for the `ett` arm. Defaults to 0.25 [P §4.4]. */
  alpha: number;
  /** Images per batch. Defaults to 8. */
  batchSize: number;
  /** Synthetic data options (image size, glyph scale, ...). Defaults to `DEFAULT_SYNTHETIC_CONFIG`. */
  data: Partial<SyntheticConfig>;
  /** Tokenizer config. Defaults to `VQ_TOKENIZER_TINY`. */
  tokenizer: Partial<VQTokenizerConfig>;
  /** LM config (vocab comes from the byte tokenizer). Defaults to a 2-layer d=128 Qwen2-style LM. */
  lm: Partial<LMConfig>;
  /** PatchGAN discriminator (L_vq's GAN term) or false to leave the GAN out. Defaults to a small one. */
  gan: Partial<PatchDiscriminatorConfig> | false;
  /**
   * Steps and peak learning rates per stage (`text`: the LM's caption-only pretraining, see
   * `textPretraining`; `generation`: stage 3 for generation, `postTrainingGen`, run per arm after
   * its stage 2 and evaluation — 0 or absent skips it). With generation steps the LM gets a visual
   * head over the tokenizer's codes (`lm.visualVocabSize` = codebook size unless set).
   */
  steps: { text: number; tokenizer: number; alignment: number; semantic: number; generation?: number };
  lr: { text: number; tokenizer: number; alignment: number; semantic: number; generation?: number };
  /**
   * Stage 0's learning-rate schedule. IBQ and the paper keep it constant over 500 k steps; a run of
   * a few thousand steps ends closer to convergence with a cosine decay. Defaults to warmup-cosine
   * (3 % warmup) in the quickstart.
   */
  tokenizerSchedule: Schedule;
  /** Validation samples scored at the end of each arm. Defaults to 256. */
  evalSamples: number;
  /**
   * Learning curves: during stage 2, caption the first `samples` validation images greedily every
   * `every` steps (and at the stage's end) and log per-field accuracy beside the losses; the report
   * plots it per arm against chance. `false` turns it off. Defaults to every 250 steps on 64 samples.
   */
  track: { every: number; samples: number } | false;
  /** Progress display. Defaults to 'auto'. */
  progress: 'auto' | 'bar' | 'lines' | 'none';
  /** Backend; defaults to `initBackend()`'s choice (ETT_BACKEND, tfjs-node-gpu, tfjs-node, WASM, cpu). */
  backend?: 'tensorflow' | 'wasm' | 'cpu';
}

export const QUICKSTART_CONFIG: ExperimentConfig = {
  seed: 0,
  runDir: 'runs/quickstart',
  arms: ['frozen-embedding', 'ett'],
  alpha: 0.25,
  batchSize: 8,
  data: { imageSize: 32 },
  tokenizer: VQ_TOKENIZER_TINY,
  lm: {
    architecture: 'qwen2',
    hiddenSize: 128,
    intermediateSize: 256,
    numLayers: 2,
    numHeads: 4,
    numKVHeads: 2,
    maxPositionEmbeddings: 160,
  },
  gan: { baseChannels: 16, layers: 2 },
  // Sized to finish in about ten minutes on 2 CPU cores (WASM): long enough to exercise every
  // stage and term, far too short for the captions to become good (`--scale` lengthens it). The
  // paper's learning rates are for 1024-image batches and billions of tokens; a CPU run of a few
  // hundred steps needs larger ones to move at all.
  steps: { text: 150, tokenizer: 60, alignment: 40, semantic: 40, generation: 40 },
  lr: { text: 2e-3, tokenizer: 2e-3, alignment: 2e-3, semantic: 1e-3, generation: 1e-3 },
  tokenizerSchedule: { kind: 'warmup-cosine', warmupRatio: 0.03 },
  evalSamples: 256,
  track: { every: 250, samples: 64 },
  progress: 'auto',
};

const CONFIG_KEYS = [...Object.keys(QUICKSTART_CONFIG), 'backend'];

/** Merges a partial config (e.g. a JSON file) over the quickstart defaults, rejecting unknown keys. */
export function resolveExperimentConfig(partial: Partial<ExperimentConfig> = {}): ExperimentConfig {
  const unknown = Object.keys(partial).filter((k) => !CONFIG_KEYS.includes(k));
  if (unknown.length > 0) throw new Error(`experiment config: unknown key(s) ${unknown.join(', ')}; known keys: ${CONFIG_KEYS.join(', ')}`);
  const c = { ...QUICKSTART_CONFIG, ...partial };
  for (const arm of c.arms) {
    // frozen-index needs its own stage 1 with an IndexEmbedding adapter (examples/frozen-vs-ett does that).
    if (!['ett', 'frozen-embedding', 'caption-only'].includes(arm)) {
      throw new Error(
        `experiment config: arm "${arm}" is not supported here; use ett, frozen-embedding or caption-only (frozen-index: see examples/frozen-vs-ett)`,
      );
    }
  }
  c.steps = { ...QUICKSTART_CONFIG.steps, ...partial.steps };
  c.lr = { ...QUICKSTART_CONFIG.lr, ...partial.lr };
  if ((c.steps.generation ?? 0) > 0) {
    const k = c.tokenizer.codebookSize ?? new VQTokenizer(c.tokenizer).codebookSize;
    if (c.lm.visualVocabSize != null && c.lm.visualVocabSize !== k) {
      throw new Error(
        `experiment config: lm.visualVocabSize ${c.lm.visualVocabSize} must equal the tokenizer's codebookSize ${k} for generation (steps.generation > 0); leave it unset`,
      );
    }
    c.lm = { ...c.lm, visualVocabSize: k };
  }
  return c;
}

/** Builds tokenizer, adapter (by arm), LM, byte tokenizer and critic into one `ETTModel`. */
export function buildModel(c: ExperimentConfig, arm: Arm): ETTModel {
  const text = new ByteTokenizer();
  const tokenizer = new VQTokenizer({ ...c.tokenizer, seed: c.seed });
  const lm = new AutoregressiveLM({ ...c.lm, vocabSize: text.vocabSize }, { seed: c.seed });
  const adapter =
    arm === 'frozen-index'
      ? createVisualAdapter({ kind: 'index', codebookSize: tokenizer.codebookSize, outputDim: lm.hiddenSize, seed: c.seed })
      : createVisualAdapter({ kind: 'projector', inputDim: tokenizer.codeDim, outputDim: lm.hiddenSize, seed: c.seed + 101 });
  // Every module draws its init from the run seed (offset so no two modules share a stream).
  const discriminator = c.gan ? new GanCritic({ seed: c.seed + 202, ...c.gan }) : undefined;
  return new ETTModel({ tokenizer, adapter, lm, text, imageSize: c.data.imageSize ?? 32, discriminator });
}

/** Adapts a `DataLoader` over synthetic images to the trainer's `DataSource`, tokenising captions. */
export function syntheticSource(model: ETTModel, data: SyntheticTextImages, batchSize: number, seed: number): DataSource<ETTBatch> {
  const budget = model.maxLength - model.numVisual - 3; // [BOS] <boi> … <eoi> … [EOS]
  const captionEncoder = new CaptionEncoder(model.text, { maxLength: budget + 1, addBos: false, addEos: true, padding: 'longest' });
  const loader = new DataLoader(data.dataset('train'), { batchSize, seed, captionEncoder, dropLast: true });
  let it = loader.batches();
  return {
    async next() {
      const r = await it.next();
      if (r.done) return undefined;
      const b = r.value;
      return { images: tf.tensor4d(b.images, [b.size, b.height, b.width, 3]), captions: b.tokens!.captionIds };
    },
    cursor: () => loader.cursor(),
    async restore(cursor) {
      await it.return(undefined);
      loader.restore(cursor as ReturnType<DataLoader['cursor']>);
      it = loader.batches();
    },
  };
}

/** What one arm produced. */
export interface ArmResult {
  arm: Arm;
  eval: EvalReport;
}

export interface ExperimentResult {
  config: ExperimentConfig;
  backend: string;
  /** After stage 1 (frozen tokenizer, trained projector): the "before ETT" reference. */
  beforeSemantic: EvalReport;
  arms: ArmResult[];
  reportPath: string;
}

function snapshot(model: Module): Record<string, tf.Tensor> {
  return Object.fromEntries(Object.entries(model.stateDict()).map(([k, v]) => [k, tf.keep(tf.clone(v))]));
}

/**
 * Thrown by `runExperiment` when its `signal` stopped training (Ctrl-C in `ett train`). The phase's
 * checkpoint is written; running again with `resume` continues exactly where it stopped.
 */
export class TrainingStoppedError extends Error {
  constructor(
    readonly phase: string,
    readonly step: number,
    readonly checkpoint: string | null,
  ) {
    super(
      `training stopped in ${phase} after step ${step}${checkpoint ? ` (checkpoint ${checkpoint})` : ''}; run it again with --resume (runExperiment(config, { resume: true })) to continue from there`,
    );
    this.name = 'TrainingStoppedError';
  }
}

async function runStages(
  model: ETTModel,
  data: SyntheticTextImages,
  c: ExperimentConfig,
  dir: string,
  stages: Stage<ETTBatch>[],
  seed: number,
  run: { resume: boolean; signal?: AbortSignal },
): Promise<void> {
  const trainer = new Trainer<ETTBatch>({
    model,
    data: syntheticSource(model, data, c.batchSize, seed),
    stages,
    modelConfig: {
      tokenizer: c.tokenizer as Record<string, unknown>,
      lm: c.lm as Record<string, unknown>,
      gan: c.gan as unknown as Record<string, unknown>,
    },
    seed,
    checkpoint: { dir, keepLast: 1 },
    progress: c.progress,
  });
  const r = await trainer.fit(run);
  if (r.stopped) throw new TrainingStoppedError(path.basename(dir), r.step, r.checkpoint);
}

/** Reconstructions grid: originals on the top row, reconstructions below. */
async function reconstructionGrid(model: ETTModel, samples: readonly EvalSample[]): Promise<Uint8Array> {
  const S = model.imageSize;
  const n = samples.length;
  const rec = tf.tidy(() => {
    const images = tf.tensor4d(Float32Array.from(samples.flatMap((s) => Array.from(s.image))), [n, S, S, 3]);
    const t = model.tokenizer.encode(images);
    return tf.clipByValue(model.tokenizer.decode(t.quantized), -1, 1);
  });
  const flat = (await rec.data()) as Float32Array;
  rec.dispose();
  await settleHostChecks(); // the encode's input check, where reads are asynchronous (WebGPU)
  const recs = samples.map((_, i) => flat.slice(i * S * S * 3, (i + 1) * S * S * 3));
  const grid = imageGrid([...samples.map((s) => s.image), ...recs], n, S, S);
  return encodePng(grid.image, grid.height, grid.width);
}

/** Images generated from validation captions (stage 3), with the validation images they describe below. */
async function generationGrid(model: ETTModel, samples: readonly EvalSample[], arm: Arm, seed: number): Promise<ReportImage> {
  const S = model.imageSize;
  const { images } = await model.generateImages(
    samples.map((s) => s.caption),
    { seed },
  );
  const flat = (await images.data()) as Float32Array;
  images.dispose();
  const generated = samples.map((_, i) =>
    Float32Array.from(flat.subarray(i * S * S * 3, (i + 1) * S * S * 3), (v) => Math.min(1, Math.max(-1, v))),
  );
  const grid = imageGrid([...generated, ...samples.map((s) => s.image)], samples.length, S, S);
  return {
    file: `generated-${arm}.png`,
    title: `Generated after stage 3 (${arm})`,
    caption: `top: sampled from the captions of the bottom row's validation images (${samples.map((s) => JSON.stringify(s.caption)).join(', ')})`,
    png: encodePng(grid.image, grid.height, grid.width),
  };
}

/**
 * The end-of-run summary: each model's per-field accuracy with chance beside it (and which fields are
 * still at chance), then what each tokenizer-tuning arm changed against the frozen-embedding arm.
 */
export function summaryLines(r: Pick<ExperimentResult, 'beforeSemantic' | 'arms'>, chance: FieldScores): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const cols = FIELDS.map((f) => FIELD_LABELS[f]);
  const row = (name: string, cells: string[], tail: string) =>
    `${name.padEnd(34)}${cells.map((v, i) => v.padStart(Math.max(cols[i].length, 6) + 2)).join('')}${tail}`;
  const lines = [
    `field accuracy on ${r.beforeSemantic.samples} held-out images (greedy captions):`,
    row('model', cols, '  PSNR dB  code usage'),
    row(
      'chance',
      FIELDS.map((f) => pct(chance[f])),
      '',
    ),
  ];
  for (const [name, e] of [['after stage 1', r.beforeSemantic] as const, ...r.arms.map((a) => [`stage 2: ${a.arm}`, a.eval] as const)]) {
    const low = fieldsAtChance(e, chance, e.samples);
    lines.push(
      row(
        name,
        FIELDS.map((f) => pct(e[f])),
        `  ${e.psnr.toFixed(2).padStart(7)}  ${pct(e.usage).padStart(10)}${low.length > 0 ? `  AT CHANCE: ${low.map((f) => FIELD_LABELS[f]).join(', ')}` : ''}`,
      ),
    );
  }
  const frozen = r.arms.find((a) => a.arm === 'frozen-embedding');
  for (const a of r.arms.filter((x) => x.arm === 'ett' || x.arm === 'caption-only')) {
    if (frozen) lines.push(describeArmDifference(frozen.eval, a.eval, { frozen: frozen.arm, tuned: a.arm }));
  }
  return lines;
}

/**
 * Runs the quickstart comparison: stage 0 (tokenizer), stage 1 (projector alignment), then stage 2
 * once per arm from the same stage-1 weights, evaluates each arm on held-out samples, then (with
 * `steps.generation`) post-trains that arm for generation and samples images, and writes an HTML report. With `resume`, every phase continues from its latest checkpoint.
 */
export async function runExperiment(
  partial: Partial<ExperimentConfig> = {},
  options: {
    resume?: boolean;
    log?: (s: string) => void;
    /** Stops training cleanly (checkpoint written, then `TrainingStoppedError`); `resume` continues. Defaults to none. */
    signal?: AbortSignal;
  } = {},
): Promise<ExperimentResult> {
  const c = resolveExperimentConfig(partial);
  const log = options.log ?? console.log;
  const backend = await initBackend(c.backend ? { backend: c.backend } : {});
  log(`backend: ${backend.backend} (${backend.reason})`);
  fs.mkdirSync(c.runDir, { recursive: true });
  fs.writeFileSync(path.join(c.runDir, 'config.json'), `${JSON.stringify(c, null, 2)}\n`);
  const data = new SyntheticTextImages({ ...c.data, seed: c.seed });
  const evalSet: EvalSample[] = Array.from({ length: c.evalSamples }, (_, i) => data.sample('validation', i));
  const run = { resume: options.resume ?? false, signal: options.signal };

  const model = buildModel(c, 'frozen-embedding');
  const images: ReportImage[] = [];
  const chance = chanceLevels(data.config);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  // Stage 2's learning curve: a small greedy evaluation every `track.every` steps, logged as the
  // trainer's `eval` records (so it is in metrics.jsonl and survives a resume) and printed.
  const tracking = (m: ETTModel, arm: Arm): Pick<RecipeOptions, 'evalEvery' | 'onEval'> => {
    if (!c.track) return {};
    const set = Array.from({ length: c.track.samples }, (_, i) => data.sample('validation', i));
    return {
      evalEvery: c.track.every,
      onEval: async (ctx) => {
        const e = await evaluateModel(m, set);
        const scores = Object.fromEntries(FIELDS.map((f) => [f, e[f]])) as unknown as FieldScores;
        const low = fieldsAtChance(scores, chance, set.length);
        log(
          `[stage 2 ${arm}] step ${ctx.stageStep}: ${FIELDS.map((f) => `${FIELD_LABELS[f]} ${pct(e[f])}`).join(', ')} on ${set.length} validation images${low.length > 0 ? `; at chance: ${low.map((f) => FIELD_LABELS[f]).join(', ')}` : ''}`,
        );
        return { ...scores, psnr: e.psnr, usage: e.usage };
      },
    };
  };
  try {
    log(`LM text pretraining on the captions, ${c.steps.text} steps`);
    await runStages(
      model,
      data,
      c,
      path.join(c.runDir, 'lm-text'),
      [textPretraining(model, { steps: c.steps.text, lr: c.lr.text })],
      c.seed + 3,
      run,
    );
    log(`stage 0: tokenizer pretraining, ${c.steps.tokenizer} steps`);
    await runStages(
      model,
      data,
      c,
      path.join(c.runDir, 'stage0-tokenizer'),
      [tokenizerPretraining(model, { steps: c.steps.tokenizer, lr: c.lr.tokenizer, schedule: c.tokenizerSchedule })],
      c.seed,
      run,
    );
    const gridSamples = evalSet.slice(0, 8);
    images.push({
      file: 'reconstructions-stage0.png',
      title: 'After stage 0',
      caption: 'top: originals, bottom: reconstructions',
      png: await reconstructionGrid(model, gridSamples),
    });
    log(`stage 1: alignment (projector only), ${c.steps.alignment} steps`);
    await runStages(
      model,
      data,
      c,
      path.join(c.runDir, 'stage1-alignment'),
      [alignment(model, { steps: c.steps.alignment, lr: c.lr.alignment })],
      c.seed + 1,
      run,
    );
    const beforeSemantic = await evaluateModel(model, evalSet);
    const afterStage1 = snapshot(model);
    const arms: ArmResult[] = [];
    try {
      for (const arm of c.arms) {
        model.loadStateDict(afterStage1);
        log(`stage 2 (${arm}${arm === 'ett' ? `, α = ${c.alpha}` : ''}): ${c.steps.semantic} steps`);
        await runStages(
          model,
          data,
          c,
          path.join(c.runDir, `stage2-${arm}`),
          [semantic(model, { steps: c.steps.semantic, lr: c.lr.semantic, arm, alpha: c.alpha, ...tracking(model, arm) })],
          c.seed + 2,
          run,
        );
        const ev = await evaluateModel(model, evalSet);
        arms.push({ arm, eval: ev });
        images.push({
          file: `reconstructions-${arm}.png`,
          title: `After stage 2 (${arm})`,
          caption: 'top: originals, bottom: reconstructions',
          png: await reconstructionGrid(model, gridSamples),
        });
        const genSteps = c.steps.generation ?? 0;
        if (genSteps > 0) {
          log(`stage 3 (generation post-training, ${arm}): ${genSteps} steps`);
          await runStages(
            model,
            data,
            c,
            path.join(c.runDir, `stage3-gen-${arm}`),
            [postTrainingGen(model, { steps: genSteps, lr: c.lr.generation })],
            c.seed + 4,
            run,
          );
          images.push(await generationGrid(model, gridSamples, arm, c.seed));
        }
      }
    } finally {
      tf.dispose(Object.values(afterStage1));
    }
    const phases = ['lm-text', 'stage0-tokenizer', 'stage1-alignment', ...c.arms.flatMap((a) => [`stage2-${a}`, `stage3-gen-${a}`])];
    const metrics: MetricRecord[] = phases.flatMap((d) => {
      const f = path.join(c.runDir, d, 'metrics.jsonl');
      return fs.existsSync(f)
        ? readMetricsLog(f)
            .filter((r) => r.type === 'step')
            .map((r) => ({ ...r, stage: d }))
        : [];
    });
    // Stage 2's tracked accuracy per arm, one chart per field; arms that end at chance are flagged.
    const evalRecords = Object.fromEntries(
      c.arms.map((a) => {
        const f = path.join(c.runDir, `stage2-${a}`, 'metrics.jsonl');
        return [a, fs.existsSync(f) ? readMetricsLog(f).filter((r) => r.type === 'eval') : []];
      }),
    );
    const accuracyCurves: AccuracyCurve[] = FIELDS.filter((f) => f !== 'textExact').map((f) => ({
      title: `stage 2: ${FIELD_LABELS[f]}`,
      chance: chance[f],
      series: c.arms.map((a) => ({
        name: a,
        points: evalRecords[a].map((r) => [r.stageStep as number, (r.metrics as Record<string, number>)[f]] as [number, number]),
      })),
    }));
    const warnings = [['after stage 1', beforeSemantic] as const, ...arms.map((a) => [`stage 2: ${a.arm}`, a.eval] as const)].flatMap(
      ([name, e]) => {
        const low = fieldsAtChance(e, chance, e.samples);
        return low.length > 0 && name !== 'after stage 1'
          ? [
              `${name} ended at chance on ${low.map((f) => FIELD_LABELS[f]).join(', ')} (${e.samples} held-out images): it has not learnt to read these fields from the image.`,
            ]
          : [];
      },
    );
    const rows: (string | number)[][] = [
      ['chance', chance.shape, chance.colour, chance.position, chance.textExact, chance.textChar, '', ''],
      ...[['after stage 1 (frozen tokenizer)', beforeSemantic] as const, ...arms.map((a) => [`stage 2: ${a.arm}`, a.eval] as const)].map(
        ([name, e]) => [name, e.shape, e.colour, e.position, e.textExact, e.textChar, e.psnr, e.usage],
      ),
    ];
    const frozenArm = arms.find((a) => a.arm === 'frozen-embedding');
    const differences = frozenArm
      ? arms
          .filter((a) => a.arm === 'ett' || a.arm === 'caption-only')
          .map((a) => describeArmDifference(frozenArm.eval, a.eval, { frozen: frozenArm.arm, tuned: a.arm }))
      : [];
    const reportPath = writeReport(c.runDir, {
      title: 'ETT.js quickstart: frozen tokenizer vs end-to-end tuning',
      subtitle: `backend ${backend.backend}; seed ${c.seed}; ${c.evalSamples} validation samples; steps ${JSON.stringify(c.steps)}`,
      metrics,
      images,
      codeUsage: arms.map((a) => ({ title: a.arm, counts: a.eval.codeCounts })),
      accuracyCurves: c.track ? accuracyCurves : undefined,
      warnings,
      notes: differences,
      tables: [
        {
          title: 'Results (validation)',
          columns: ['model', 'shape', 'colour', 'position', 'text exact', 'text chars', 'PSNR dB', 'code usage'],
          rows,
          note: 'Caption fields are scored separately; text is the small rendered string (TextVQA-like), shape/colour/position the GQA-like fields.',
        },
        {
          title: 'Example captions (last arm)',
          columns: ['reference', 'generated'],
          rows: (arms.at(-1)?.eval.examples ?? []).map((e) => [e.reference, e.generated]),
        },
      ],
    });
    const result = { config: c, backend: backend.backend, beforeSemantic, arms, reportPath };
    for (const line of summaryLines(result, chance)) log(line);
    fs.writeFileSync(path.join(c.runDir, 'results.json'), `${JSON.stringify(result, null, 1)}\n`);
    return result;
  } finally {
    model.dispose();
  }
}
