import {
  captionLoss,
  discriminatorLoss,
  ettObjective,
  visualCodeLoss,
  vqObjective,
  type AlphaSchedule,
  type VqObjectiveConfigInput,
} from '@ettjs/losses';
import { IBQ_ADAM_BETAS, type LossOutput, type OptimizerOptions, type Schedule, type Stage } from '@ettjs/trainer';
import type { TokenizerOutput } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { GanCritic } from './critic';
import { IGNORE_INDEX } from './sequence';
import { disposeTokens, type ETTModel, ETTModelError } from './ett-model';

/** A training batch: images NHWC in [-1, 1] and their tokenised captions (no specials). */
export interface ETTBatch {
  images: tf.Tensor4D;
  captions: number[][];
  /** The images' code indices `[B][N]`; stage 3 gen fills them in before its loss (`prepare`). */
  codes?: number[][];
}

/** The comparison arms of the paper's Table 4 / Table 5, one flag apart. */
export type Arm = 'ett' | 'frozen-embedding' | 'frozen-index' | 'caption-only';
export const ARMS: readonly Arm[] = ['ett', 'frozen-embedding', 'frozen-index', 'caption-only'];

/** Options every recipe takes. */
export interface RecipeOptions {
  /** Optimizer steps of the stage. */
  steps: number;
  /** Peak learning rate. Defaults to the paper's value for the stage. */
  lr?: number;
  /** Learning-rate schedule. Defaults to the paper's for the stage. */
  schedule?: Schedule;
  /** Global-norm clip. Defaults to 1.0 (LLaVA/EVE recipes) for LM stages, none for stage 0. */
  clipNorm?: number;
  /** Micro-batches per step. Defaults to 1. */
  gradAccumulation?: number;
  /** `L_vq` configuration (weights, perceptual kind, GAN schedule). Defaults to the paper's. */
  vq?: VqObjectiveConfigInput;
  /** Evaluate every N steps with `onEval`. */
  evalEvery?: number;
  onEval?: Stage<ETTBatch>['onEval'];
}

interface TokenizerHooks {
  settle?: () => Promise<void>;
  update?: () => unknown;
  train?: () => unknown;
  eval?: () => unknown;
}

/**
 * Quantizer bookkeeping after an optimizer step (EMA codebook, dead-code restart), when the
 * tokenizer has it; `settle` first reads what a WebGPU device still holds.
 */
async function tokenizerAfterStep(model: ETTModel): Promise<void> {
  const t = model.tokenizer as unknown as TokenizerHooks;
  await t.settle?.();
  t.update?.();
}

function setTokenizerTraining(model: ETTModel, training: boolean): void {
  const t = model.tokenizer as unknown as TokenizerHooks;
  if (training) t.train?.();
  else t.eval?.();
}

/** The quantizer's own weights for its terms (`VQTokenizer` returns them), so classic VQ's `codebook`/`commitment` need no config. */
function lossWeightsOf(tokens: TokenizerOutput): Record<string, number> | undefined {
  return (tokens as TokenizerOutput & { lossWeights?: Record<string, number> }).lossWeights;
}

/** The GAN term is only on when the model carries a discriminator. */
function vqConfigFor(model: ETTModel, config: VqObjectiveConfigInput | undefined): { cfg: VqObjectiveConfigInput; critic?: GanCritic } {
  const critic = model.discriminator instanceof GanCritic ? model.discriminator : undefined;
  return { critic, cfg: critic ? (config ?? {}) : { ...config, weights: { ...config?.weights, gan: 0 } } };
}

/** `L_vq` of a batch from its tokenizer output [P Eq. 1]: decode, then the paper's combiner. */
function vqLoss(model: ETTModel, images: tf.Tensor4D, tokens: TokenizerOutput, config: VqObjectiveConfigInput | undefined, step: number) {
  const reconstructions = model.tokenizer.decode(tokens.quantized);
  const { cfg, critic } = vqConfigFor(model, config);
  const vq = vqObjective(
    {
      inputs: images,
      reconstructions,
      quantizerLosses: tokens.losses,
      quantizerLossWeights: lossWeightsOf(tokens),
      discriminator: critic?.disc,
    },
    cfg,
    { step },
  );
  reconstructions.dispose(); // the tape keeps its own copy for the backward pass
  return vq;
}

/**
 * The discriminator half of a stage (hinge + LeCAM [IBQ]), stepping before the generator, and the
 * commit of the LeCAM anchors, which must happen after the step, outside the tape.
 */
function criticStep(model: ETTModel, lr: number): { spec: Stage<ETTBatch>['discriminator']; commit: () => void } {
  if (!(model.discriminator instanceof GanCritic)) return { spec: undefined, commit: () => {} };
  const critic = model.discriminator;
  const spec: Stage<ETTBatch>['discriminator'] = {
    module: 'discriminator',
    optimizer: { kind: 'adam', lr, betas: IBQ_ADAM_BETAS },
    loss: (batch) => {
      // The generator's output is data here: no gradient reaches the tokenizer. Encoded in eval
      // mode, so the quantizer's usage window and dead-code restart see one batch per step (the
      // generator's loss switches training mode back on).
      setTokenizerTraining(model, false);
      const fake = tf.tidy(() => {
        const tokens = model.tokenizer.encode(batch.images);
        const rec = model.tokenizer.decode(tokens.quantized);
        disposeTokens(tokens);
        return rec;
      });
      const d = discriminatorLoss(critic.disc, batch.images, fake, { lecam: critic.lecam });
      fake.dispose();
      critic.holdLogits(tf.keep(tf.clone(d.components.logitsReal)), tf.keep(tf.clone(d.components.logitsFake)));
      return { total: d.total, components: d.components };
    },
  };
  return { spec, commit: () => critic.commitLogits() };
}

/**
 * Stage 0, tokenizer pretraining: encoder, codebook, decoder (and the discriminator) on `L_vq`.
 * Adam β (0.5, 0.9), constant lr 1e-4 [P Table 1, IBQ].
 */
export function tokenizerPretraining(model: ETTModel, o: RecipeOptions): Stage<ETTBatch> {
  const lr = o.lr ?? 1e-4;
  const critic = criticStep(model, lr);
  return {
    name: 'tokenizer',
    steps: o.steps,
    trainable: ['tokenizer'],
    loss: (batch, ctx) => {
      setTokenizerTraining(model, true);
      const tokens = model.tokenizer.encode(batch.images);
      const vq = vqLoss(model, batch.images, tokens, o.vq, ctx.step);
      const stats = { ...tokens.stats };
      disposeTokens(tokens);
      return { total: vq.total, components: vq.components, stats };
    },
    optimizer: { kind: 'adam', lr, betas: IBQ_ADAM_BETAS },
    schedule: o.schedule ?? { kind: 'constant' },
    gradAccumulation: o.gradAccumulation,
    clipNorm: o.clipNorm,
    discriminator: critic.spec,
    afterStep: () => {
      critic.commit();
      return tokenizerAfterStep(model);
    },
    evalEvery: o.evalEvery,
    onEval: o.onEval,
  };
}

/** The caption loss of a batch (understanding): `L_cap` with token accuracy in the stats. */
function captionTerms(model: ETTModel, batch: ETTBatch) {
  const { logits, targets, tokens } = model.captionForward(batch.images, batch.captions);
  const ce = captionLoss(logits, targets, { shift: false });
  logits.dispose();
  targets.dispose();
  return { ce, tokens };
}

const PAPER_LM_SCHEDULE: Schedule = { kind: 'warmup-cosine', warmupRatio: 0.03 };

/**
 * Optimisation settings shared by the LM stages: Adam (the paper; no decoupled decay), warmup 3 %
 * then cosine, global-norm clip 1.0, and the caller's accumulation and evaluation hooks.
 */
function lmStageOptions(o: RecipeOptions, lr: number) {
  const optimizer: OptimizerOptions = { kind: 'adam', lr };
  return {
    optimizer,
    schedule: o.schedule ?? PAPER_LM_SCHEDULE,
    gradAccumulation: o.gradAccumulation,
    clipNorm: o.clipNorm ?? 1,
    evalEvery: o.evalEvery,
    onEval: o.onEval,
  };
}

/**
 * LM text pretraining on the captions alone (`[BOS] caption [EOS]`), LM only. The paper starts
 * from a pretrained Qwen2.5; a toy LM built from scratch must learn its text first, or stage 1
 * aligns the projector to a random model (PAPER.md §5, "Pretrain it on the caption text alone").
 */
export function textPretraining(model: ETTModel, o: RecipeOptions): Stage<ETTBatch> {
  const { bos, eos, pad } = model.ids;
  return {
    name: 'text',
    steps: o.steps,
    trainable: ['lm'],
    loss: (batch) => {
      const T = Math.max(...batch.captions.map((c) => c.length)) + 2;
      const rows = batch.captions.map((c) => [bos, ...c, eos, ...new Array(T - c.length - 2).fill(pad)]);
      const labels = batch.captions.map((c) => [bos, ...c, eos, ...new Array(T - c.length - 2).fill(IGNORE_INDEX)]);
      const ids = tf.tensor2d(rows, [rows.length, T], 'int32');
      const mask = tf.tensor2d(
        rows.map((r, i) => r.map((_, j) => (j < batch.captions[i].length + 2 ? 1 : 0))),
        [rows.length, T],
        'int32',
      );
      const y = tf.tensor2d(labels, [rows.length, T], 'int32');
      const { logits } = model.lm.forward({ inputsEmbeds: model.lm.embed(ids), attentionMask: mask });
      const ce = captionLoss(logits, y); // HF-aligned labels: shifted inside
      tf.dispose([ids, mask, y, logits]);
      return { total: ce.loss, components: { text: ce.loss, accuracy: ce.accuracy } };
    },
    ...lmStageOptions(o, o.lr ?? 1e-3),
  };
}

/** Stage 1, alignment: the adapter only, on `L_cap`; tokenizer and LM frozen. Peak lr 4e-5 [P Table 1]. */
export function alignment(model: ETTModel, o: RecipeOptions): Stage<ETTBatch> {
  return {
    name: 'alignment',
    steps: o.steps,
    trainable: ['adapter'],
    loss: (batch) => {
      setTokenizerTraining(model, false);
      const { ce, tokens } = captionTerms(model, batch);
      const stats = { ...tokens.stats };
      disposeTokens(tokens);
      return { total: ce.loss, components: { caption: ce.loss, accuracy: ce.accuracy }, stats };
    },
    ...lmStageOptions(o, o.lr ?? 4e-5),
  };
}

/**
 * Stage 2, semantic learning. `ett`: tokenizer + adapter + LM on `L_cap + α·L_vq` (α = 0.25 [P
 * §4.4]), with the discriminator stepping first when the model has one. `caption-only`: the same
 * with α = 0 and no reconstruction term (Table 5's "Und. only"). `frozen-embedding` /
 * `frozen-index`: the tokenizer stays frozen and only `L_cap` trains adapter + LM (Table 4).
 */
export function semantic(model: ETTModel, o: RecipeOptions & { arm?: Arm; alpha?: number | AlphaSchedule }): Stage<ETTBatch> {
  const arm = o.arm ?? 'ett';
  const tuneTokenizer = arm === 'ett' || arm === 'caption-only';
  const alpha: AlphaSchedule =
    arm === 'caption-only'
      ? { kind: 'constant', value: 0 }
      : typeof o.alpha === 'object'
        ? o.alpha
        : { kind: 'constant', value: o.alpha ?? 0.25 };
  const useVq = arm === 'ett' && !(alpha.kind === 'constant' && alpha.value === 0);
  const lr = o.lr ?? 4e-5;
  const critic = useVq ? criticStep(model, lr) : undefined;
  return {
    name: 'semantic',
    steps: o.steps,
    trainable: tuneTokenizer ? ['tokenizer', 'adapter', 'lm'] : ['adapter', 'lm'],
    loss: (batch, ctx): LossOutput => {
      setTokenizerTraining(model, tuneTokenizer);
      if (!useVq) {
        const { ce, tokens } = captionTerms(model, batch);
        const stats = { ...tokens.stats };
        disposeTokens(tokens);
        return { total: ce.loss, components: { caption: ce.loss, accuracy: ce.accuracy }, stats };
      }
      // One encode feeds both terms, so caption and reconstruction gradients meet in the same codes.
      const { logits, targets, tokens } = model.captionForward(batch.images, batch.captions);
      const ce = captionLoss(logits, targets, { shift: false });
      const vq = vqLoss(model, batch.images, tokens, o.vq, ctx.step);
      const total = ettObjective({ caption: ce.loss, vq }, { alpha }, { step: ctx.stageStep });
      const stats = { ...tokens.stats };
      tf.dispose([logits, targets, vq.total, ...Object.values(vq.components)]);
      disposeTokens(tokens);
      return { total: total.total, components: { ...total.components, accuracy: ce.accuracy }, stats };
    },
    ...lmStageOptions(o, lr),
    discriminator: critic?.spec,
    afterStep: tuneTokenizer
      ? () => {
          critic?.commit();
          return tokenizerAfterStep(model);
        }
      : undefined,
  };
}

/** Stage 3 chat: adapter + LM on `L_cap`, tokenizer frozen. Peak lr 2e-5 [P Table 1]. */
export function postTrainingChat(model: ETTModel, o: RecipeOptions): Stage<ETTBatch> {
  return { ...alignment(model, { ...o, lr: o.lr ?? 2e-5 }), name: 'post-chat', trainable: ['adapter', 'lm'] };
}

/**
 * Stage 3 gen: adapter + LM (its visual head included) on cross-entropy over the image's code
 * indices, text first; tokenizer frozen. Peak lr 2e-5 [P Table 1].
 */
export function postTrainingGen(model: ETTModel, o: RecipeOptions): Stage<ETTBatch> {
  return {
    name: 'post-gen',
    steps: o.steps,
    trainable: ['adapter', 'lm'],
    // Codes are data for this stage: the tokenizer is frozen and indices carry no gradient. Read
    // before the step (asynchronously, so this works on WebGPU too).
    prepare: async (batch) => {
      if (batch.codes) return batch;
      setTokenizerTraining(model, false);
      const codes = tf.tidy(() => {
        const t = model.tokenizer.encode(batch.images);
        const idx = tf.clone(t.indices);
        disposeTokens(t);
        return idx;
      });
      try {
        return { ...batch, codes: (await codes.array()) as number[][] };
      } finally {
        codes.dispose();
      }
    },
    loss: (batch) => {
      if (!batch.codes)
        throw new ETTModelError('postTrainingGen: the batch has no codes; run the stage with the Trainer (its prepare hook reads them)');
      const { logits, targets } = model.generationForward(batch.captions, batch.codes);
      const ce = visualCodeLoss(logits, targets);
      tf.dispose([logits, targets]);
      return { total: ce.loss, components: { visual: ce.loss, accuracy: ce.accuracy } };
    },
    ...lmStageOptions(o, o.lr ?? 2e-5),
  };
}
