import * as tf from '@tensorflow/tfjs-core';

/** Options of `entropyLoss` (names and defaults of IBQ's `compute_entropy_loss`). */
export interface EntropyLossOptions {
  /** Softmax temperature τ. Defaults to 0.01 [IBQ `entropy_temperature`]. */
  temperature?: number;
  /** Weight of the per-sample entropy (minimised). Defaults to 1 [IBQ `sample_minimization_weight`]. */
  sampleWeight?: number;
  /** Weight of the entropy of the batch-average distribution (maximised). Defaults to 1 [IBQ `batch_maximization_weight`]. */
  batchWeight?: number;
  /** ε inside `log(avg + ε)`. Defaults to 1e-5 [IBQ]. */
  eps?: number;
}

/** The entropy loss and its two parts, for the log. */
export type EntropyLossResult = {
  loss: tf.Scalar;
  sampleEntropy: tf.Scalar;
  avgEntropy: tf.Scalar;
};

/**
 * L_entropy [IBQ quantize.py `compute_entropy_loss`, from MAGVIT-v2]: with `p = softmax(logits/τ)`
 * over the codes, `H_sample = mean_i H(p_i)` (confident assignments) and `H_avg = H(mean_i p_i)`
 * (use of the whole codebook), `loss = sampleWeight·H_sample − batchWeight·H_avg`. Logits `[..., K]`
 * (every leading axis is a sample). The sample entropy uses log-softmax, so it is stable at τ = 0.01.
 */
export function entropyLoss(logits: tf.Tensor, options: EntropyLossOptions = {}): EntropyLossResult {
  const tau = options.temperature ?? 0.01;
  const eps = options.eps ?? 1e-5;
  const ws = options.sampleWeight ?? 1;
  const wb = options.batchWeight ?? 1;
  if (logits.rank < 2) throw new Error(`entropyLoss: logits must be [..., K] with at least one sample axis, got [${logits.shape}]`);
  if (!(tau > 0)) throw new Error(`entropyLoss: temperature must be > 0, got ${tau}`);
  return tf.tidy(() => {
    const K = logits.shape[logits.rank - 1];
    const flat = tf.div(tf.reshape(logits, [-1, K]), tau); // [N, K]
    const logp = tf.logSoftmax(flat);
    const p = tf.exp(logp);
    const sampleEntropy = tf.neg(tf.mean(tf.sum(tf.mul(p, logp), 1))) as tf.Scalar;
    const avg = tf.mean(p, 0); // [K]
    const avgEntropy = tf.neg(tf.sum(tf.mul(avg, tf.log(tf.add(avg, eps))))) as tf.Scalar;
    const loss = tf.sub(tf.mul(sampleEntropy, ws), tf.mul(avgEntropy, wb)) as tf.Scalar;
    return { loss, sampleEntropy, avgEntropy };
  });
}
