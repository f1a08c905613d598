import { stopGradient, straightThrough } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { bestCodes, DEFAULT_MAX_BLOCK_ELEMENTS, gatherRows } from './code-search';
import {
  type CodebookOptions,
  CodebookQuantizer,
  l2NormalizeRows,
  type QuantizeCallOptions,
  type QuantizerResult,
} from './codebook-quantizer';
import { codebookEntropyLoss } from './entropy';

/**
 * Where β goes. `commitment` (VQ-VAE, taming `legacy=False`): `codebook + β·commitment`.
 * `codebook` (taming's `legacy=True` swap, CompVis/taming-transformers#46): `β·codebook + commitment`.
 */
export type VQBetaPlacement = 'codebook' | 'commitment';

/** Classic VQ options (VQ-VAE, arXiv 1711.00937; taming `VectorQuantizer2`). */
export interface VQOptions extends CodebookOptions {
  /** β. Defaults to 0.25 (VQ-VAE, taming). */
  beta: number;
  /** Defaults to `commitment` (VQ-VAE's form). */
  betaPlacement: VQBetaPlacement;
}

/** Classic VQ defaults (taming `VectorQuantizer2` with `legacy=False`). */
export const DEFAULT_VQ_OPTIONS: Omit<VQOptions, 'codebookSize' | 'codeDim'> = {
  beta: 0.25,
  betaPlacement: 'commitment',
  l2Normalize: false,
  codebookUpdate: { kind: 'gradient' },
  deadCodeRestart: { kind: 'off' },
  entropy: { kind: 'off' },
  usageWindow: 100,
  frozen: false,
  init: 'uniform',
  seed: 0,
  maxBlockElements: DEFAULT_MAX_BLOCK_ELEMENTS,
};

/**
 * Classic vector quantization: the nearest code in L2 (cosine with `l2Normalize`), and the
 * straight-through estimator `z + sg(z_q − z)`: the decoder's gradient passes to the encoder
 * unchanged and the codebook learns only from its own loss term (or from EMA).
 *
 * Losses (unweighted; see `lossWeights`), computed on the raw lookup `z_q` **before** the
 * straight-through substitution — computing them after it would hand the encoder's gradient to the
 * codebook (andylolu2/jax-vqvae-gpt#2):
 * - `codebook` — `mean((z_q − sg(z))²)`, trains the codes (weight 0 under EMA).
 * - `commitment` — `mean((sg(z_q) − z)²)`, keeps the encoder near its codes.
 * - `entropy` (when on) — as IBQ's.
 */
export class VectorQuantizer extends CodebookQuantizer<VQOptions> {
  constructor(options: Partial<VQOptions> & Pick<VQOptions, 'codebookSize' | 'codeDim'>) {
    const o = { ...DEFAULT_VQ_OPTIONS, ...options };
    if (!(o.beta >= 0)) throw new RangeError(`VectorQuantizer: beta must be >= 0, got ${o.beta}`);
    super(o);
  }

  /** Quantises latents `[..., D]`. */
  quantize<T extends tf.Tensor>(z: T, call: QuantizeCallOptions = {}): QuantizerResult<T> {
    const o = this.options;
    const result = tf.tidy(() => {
      const flat = this.flatten(z);
      const zs = o.l2Normalize ? l2NormalizeRows(flat) : flat; // [N, D]
      const e = this.searchCodebook(); // [K, D]
      // argmin ‖z − e‖² = argmax (z·e − ½‖e‖²); the bias is computed off the tape inside bestCodes' caller scope.
      const bias = tf.mul(tf.sum(tf.square(stopGradient(e)), 1), -0.5) as tf.Tensor1D;
      const indices = bestCodes(zs, stopGradient(e), { bias, maxBlockElements: o.maxBlockElements });
      const zq = gatherRows(e, indices, o.maxBlockElements); // [N, D], raw lookup: gradient to the selected rows only
      const losses: Record<string, tf.Scalar> = {
        codebook: tf.mean(tf.square(tf.sub(zq, stopGradient(zs)))) as tf.Scalar,
        commitment: tf.mean(tf.square(tf.sub(stopGradient(zq), zs))) as tf.Scalar,
      };
      if (o.entropy.kind === 'on') {
        losses.entropy = codebookEntropyLoss(zs, e, { temperature: o.entropy.temperature, maxBlockElements: o.maxBlockElements });
      }
      // Forward value exactly z_q; gradient to z unchanged, none to the codebook.
      const out = straightThrough(zq, zs);
      return {
        quantized: tf.reshape(out, z.shape) as T,
        indices: tf.reshape(indices, z.shape.slice(0, -1)),
        flatIndices: indices,
        latents: zs,
        losses,
      };
    });
    const stats = this.observe(result.flatIndices, result.latents, call);
    result.flatIndices.dispose();
    result.latents.dispose();
    const ema = o.codebookUpdate.kind === 'ema';
    const bookWeight = o.betaPlacement === 'codebook' ? o.beta : 1;
    const lossWeights: Record<string, number> = {
      codebook: ema ? 0 : bookWeight,
      commitment: o.betaPlacement === 'codebook' ? 1 : o.beta,
    };
    if (o.entropy.kind === 'on') lossWeights.entropy = o.entropy.weight;
    return { quantized: result.quantized, indices: result.indices, losses: result.losses, lossWeights, stats };
  }
}
