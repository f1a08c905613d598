import * as tf from '@tensorflow/tfjs-core';
import { forEachBlock, rowsPerBlock } from './code-search';

/** IBQ's epsilon inside `log(avg_probs + eps)` of the batch entropy. */
const AVG_EPS = 1e-5;

/**
 * IBQ's codebook entropy loss (MAGVIT-v2's, used by IBQ's `compute_entropy_loss`) on the
 * affinities `a = z·Eᵀ`: with `p_i = softmax(a_i / temperature)`,
 * `loss = mean_i H(p_i) − H(mean_i p_i)`, `H(p) = −Σ p log p` (the batch term as `log(p̄ + 1e-5)`).
 * Minimising it makes each token confident and the batch spread over many codes. IBQ uses
 * temperature 0.01 and weight 0.05 (the weight is applied by the caller).
 *
 * It is one `customGrad` that walks the `[N, K]` affinities in row blocks in the forward and
 * again in the backward, so only `z`, `E` and `p̄` are kept for backprop: memory is
 * `O(block·K)`, not `O(N·K)`. The gradient is written out by hand:
 * `∂loss/∂a_i = (1/(N·T)) [−p_i ⊙ (log p_i − ⟨p_i, log p_i⟩) + p_i ⊙ (h − ⟨p_i, h⟩)]`,
 * `h = log(p̄ + ε) + p̄ / (p̄ + ε)`.
 *
 * `z` `[N, D]`, `codebook` `[K, D]`; returns a scalar.
 */
export function codebookEntropyLoss(
  z: tf.Tensor2D,
  codebook: tf.Tensor2D,
  options: { temperature: number; maxBlockElements: number },
): tf.Scalar {
  const { temperature } = options;
  if (!(temperature > 0)) throw new RangeError(`codebookEntropyLoss: temperature must be > 0, got ${temperature}`);
  const [n] = z.shape;
  const [k] = codebook.shape;
  const block = rowsPerBlock(k, options.maxBlockElements);
  const inv = 1 / temperature;
  const probsOf = (zb: tf.Tensor2D, e: tf.Tensor2D) => {
    const logits = tf.mul(tf.matMul(zb, e, false, true), inv); // [rows, K]
    return { p: tf.softmax(logits), logp: tf.logSoftmax(logits) };
  };
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [zz, e, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    let sample: tf.Tensor = tf.scalar(0);
    let pSum: tf.Tensor = tf.zeros([k]);
    forEachBlock(n, block, (start, rows) => {
      const [s, ps] = tf.tidy(() => {
        const { p, logp } = probsOf(tf.slice(zz, [start, 0], [rows, -1]), e);
        // Row sums first: WASM accumulates a sum in float32, and one sum over all rows·K terms
        // (4M at K = 16 384) was 2% off (ibq-large-codebook.test.ts).
        return [tf.add(sample, tf.neg(tf.sum(tf.sum(tf.mul(p, logp), 1)))), tf.add(pSum, tf.sum(p, 0))];
      });
      sample.dispose();
      pSum.dispose();
      sample = s;
      pSum = ps;
    });
    const pBar = tf.div(pSum, n); // [K]
    const avg = tf.neg(tf.sum(tf.mul(pBar, tf.log(tf.add(pBar, AVG_EPS)))));
    save([zz, e, pBar]);
    return {
      value: tf.sub(tf.div(sample, n), avg),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [zs, es, pb] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const h = tf.tidy(() => tf.add(tf.log(tf.add(pb, AVG_EPS)), tf.div(pb, tf.add(pb, AVG_EPS)))); // [K]
        const scale = tf.mul(dy, inv / n);
        const dzParts: tf.Tensor2D[] = [];
        let dE: tf.Tensor2D = tf.zerosLike(es);
        forEachBlock(n, block, (start, rows) => {
          const [dzb, dEn] = tf.tidy(() => {
            const zb = tf.slice(zs, [start, 0], [rows, -1]);
            const { p, logp } = probsOf(zb, es);
            const sampleTerm = tf.mul(p, tf.sub(logp, tf.sum(tf.mul(p, logp), 1, true)));
            const avgTerm = tf.mul(p, tf.sub(h, tf.sum(tf.mul(p, h), 1, true)));
            const da = tf.mul(tf.sub(avgTerm, sampleTerm), scale); // [rows, K]
            return [tf.matMul(da, es), tf.add(dE, tf.matMul(da, zb, true, false))];
          });
          dzParts.push(dzb as tf.Tensor2D);
          dE.dispose();
          dE = dEn as tf.Tensor2D;
        });
        const dz = dzParts.length === 1 ? dzParts[0] : tf.concat(dzParts, 0);
        return [dz, dE];
      },
    };
  });
  return f(z, codebook) as tf.Scalar;
}
