import { stopGradient } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { bestCodes, DEFAULT_MAX_BLOCK_ELEMENTS, forEachBlock, gatherRows, rowsPerBlock, scatterRows } from './code-search';
import {
  type CodebookOptions,
  CodebookQuantizer,
  l2NormalizeRows,
  type QuantizeCallOptions,
  type QuantizerResult,
} from './codebook-quantizer';
import { codebookEntropyLoss } from './entropy';

/**
 * Where β goes in IBQ's quantisation loss. IBQ's code (`IndexPropagationQuantize`) puts it on the
 * codebook term, `… + mean((sg(z_q2) − z)²) + β·mean((z_q2 − sg(z))²)`; the IBQ paper's Eq. 10 puts
 * it on the commitment term (SEED-Voken #50, #60; the same "legacy" swap as taming #46).
 * `codebook` reproduces the code, `commitment` the paper.
 */
export type IBQBetaPlacement = 'codebook' | 'commitment';

/** IBQ options (arXiv 2412.02692; TencentARC/SEED-Voken `src/IBQ/modules/vqvae/quantize.py`). */
export interface IBQOptions extends CodebookOptions {
  /** Softmax temperature τ of `softmax(z·Eᵀ / τ)`. Defaults to 1 (IBQ has none; SEED-Voken #48). */
  temperature: number;
  /** β of the quantisation loss. Defaults to 0.25 (IBQ yaml, ETT §4.1). */
  beta: number;
  /** Defaults to `codebook` (IBQ's code). */
  betaPlacement: IBQBetaPlacement;
}

/** IBQ defaults: the paper's form (dot-product logits, τ = 1, β 0.25 on the codebook term, entropy 0.01 / 0.05). */
export const DEFAULT_IBQ_OPTIONS: Omit<IBQOptions, 'codebookSize' | 'codeDim'> = {
  temperature: 1,
  beta: 0.25,
  betaPlacement: 'codebook',
  l2Normalize: false,
  codebookUpdate: { kind: 'gradient' },
  deadCodeRestart: { kind: 'off' },
  entropy: { kind: 'on', temperature: 0.01, weight: 0.05 },
  usageWindow: 100,
  frozen: false,
  init: 'normal',
  seed: 0,
  maxBlockElements: DEFAULT_MAX_BLOCK_ELEMENTS,
};

/**
 * IBQ's straight-through estimator on the categorical distribution, as one `customGrad`:
 * forward `z_q = E[ind]` exactly (IBQ computes `(hard − sg(soft) + soft)·E`, equal up to rounding);
 * backward as autodiff of that expression:
 * `g = dy·Eᵀ`, `∂l = soft ⊙ (g − ⟨g, soft⟩)`, `∂z = ∂l·E / τ`, `∂E = ∂lᵀ·z / τ + hardᵀ·dy`.
 * The softmax is recomputed block by block in the backward, so backprop keeps `z`, `E` and the
 * indices, never an `[N, K]` tensor.
 */
export function ibqStraightThrough(
  z: tf.Tensor2D,
  codebook: tf.Tensor2D,
  indices: tf.Tensor1D,
  options: { temperature: number; maxBlockElements: number },
): tf.Tensor2D {
  const [n] = z.shape;
  const [k] = codebook.shape;
  const inv = 1 / options.temperature;
  const block = rowsPerBlock(k, options.maxBlockElements);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [zz, e, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    save([zz, e, indices]);
    return {
      value: tf.gather(e, indices),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [zs, es, idx] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const dzParts: tf.Tensor[] = [];
        // The hard path: each token's gradient lands on its own code row.
        let dE: tf.Tensor = scatterRows(dy as tf.Tensor2D, idx, k, n, block); // [K, D]
        forEachBlock(n, block, (start, rows) => {
          const [dzb, dEn] = tf.tidy(() => {
            const zb = tf.slice(zs, [start, 0], [rows, -1]);
            const dyb = tf.slice(dy, [start, 0], [rows, -1]) as tf.Tensor2D;
            const soft = tf.softmax(tf.mul(tf.matMul(zb, es, false, true), inv)); // [rows, K]
            const g = tf.matMul(dyb, es, false, true); // [rows, K]
            const dl = tf.mul(soft, tf.sub(g, tf.sum(tf.mul(g, soft), 1, true)));
            return [tf.mul(tf.matMul(dl, es), inv), tf.add(dE, tf.mul(tf.matMul(dl, zb, true, false), inv))];
          });
          dzParts.push(dzb);
          dE.dispose();
          dE = dEn;
        });
        return [dzParts.length === 1 ? dzParts[0] : tf.concat(dzParts, 0), dE];
      },
    };
  });
  return f(z, codebook) as tf.Tensor2D;
}

/**
 * Index Backpropagation Quantization (IBQ), the quantizer ETT builds on: logits `z·Eᵀ / τ`, the
 * code `argmax`, and a straight-through estimator on the whole categorical distribution, so every
 * codebook row and the encoder get gradient through the softmax (not only the selected rows).
 *
 * Losses (unweighted; `lossWeights` gives `quant: 1`, `entropy: entropy.weight`):
 * - `quant` — exactly IBQ's code: `mean((z_q − z)²) + mean((sg(z_q2) − z)²) + β·mean((z_q2 − sg(z))²)`,
 *   `z_q` the straight-through output, `z_q2 = E[ind]` a plain lookup. With
 *   `betaPlacement: 'commitment'` β moves to the second term.
 * - `entropy` (when on) — `mean H(p_i) − H(p̄)` on `softmax(z·Eᵀ / T_ent)`.
 */
export class IBQQuantizer extends CodebookQuantizer<IBQOptions> {
  constructor(options: Partial<IBQOptions> & Pick<IBQOptions, 'codebookSize' | 'codeDim'>) {
    const o = { ...DEFAULT_IBQ_OPTIONS, ...options };
    // Checked before super() allocates the codebook, so a bad option leaks nothing.
    if (!(o.temperature > 0)) throw new RangeError(`IBQQuantizer: temperature must be > 0, got ${o.temperature}`);
    if (!(o.beta >= 0)) throw new RangeError(`IBQQuantizer: beta must be >= 0, got ${o.beta}`);
    super(o);
  }

  /** Quantises latents `[..., D]`. Differentiable; see the class comment for the gradients. */
  quantize<T extends tf.Tensor>(z: T, call: QuantizeCallOptions = {}): QuantizerResult<T> {
    const o = this.options;
    const result = tf.tidy(() => {
      const flat = this.flatten(z);
      const zs = o.l2Normalize ? l2NormalizeRows(flat) : flat; // [N, D]
      const e = this.searchCodebook(); // [K, D]
      // τ > 0 does not change the argmax, so the search runs on z·Eᵀ.
      const indices = bestCodes(zs, e, { maxBlockElements: o.maxBlockElements });
      const zq = ibqStraightThrough(zs, e, indices, o); // [N, D]
      const zq2 = gatherRows(e, indices, o.maxBlockElements); // [N, D], plain lookup
      const sq = (a: tf.Tensor, b: tf.Tensor) => tf.mean(tf.square(tf.sub(a, b)));
      const commit = sq(stopGradient(zq2), zs);
      const book = sq(zq2, stopGradient(zs));
      const quant = tf.add(
        sq(zq, zs),
        o.betaPlacement === 'codebook' ? tf.add(commit, tf.mul(book, o.beta)) : tf.add(tf.mul(commit, o.beta), book),
      ) as tf.Scalar;
      const losses: Record<string, tf.Scalar> = { quant };
      if (o.entropy.kind === 'on') {
        losses.entropy = codebookEntropyLoss(zs, e, { temperature: o.entropy.temperature, maxBlockElements: o.maxBlockElements });
      }
      return {
        quantized: tf.reshape(zq, z.shape) as T,
        indices: tf.reshape(indices, z.shape.slice(0, -1)),
        flatIndices: indices,
        latents: zs,
        losses,
      };
    });
    const stats = this.observe(result.flatIndices, result.latents, call);
    result.flatIndices.dispose();
    result.latents.dispose();
    const lossWeights: Record<string, number> = { quant: 1 };
    if (o.entropy.kind === 'on') lossWeights.entropy = o.entropy.weight;
    return { quantized: result.quantized, indices: result.indices, losses: result.losses, lossWeights, stats };
  }
}
