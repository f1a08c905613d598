import * as tf from '@tensorflow/tfjs-core';

/** Options shared by the caption and visual-code cross-entropies. */
export interface CrossEntropyOptions {
  /** Target value that marks a position as unsupervised. Defaults to -100 (PyTorch / HF `ignore_index`). */
  ignoreIndex?: number;
  /**
   * Label smoothing ε in PyTorch's form: `(1 − ε)·(−log p_y) + ε·mean_v(−log p_v)`. Defaults to 0
   * (the paper uses none).
   */
  labelSmoothing?: number;
  /** Optional `[B, T]` mask (1 = supervised, 0 = not), combined with `ignoreIndex`. Defaults to none. */
  mask?: tf.Tensor2D;
}

/** A cross-entropy and what a log wants next to it. */
export type CrossEntropyResult = {
  /** Mean over supervised positions; 0 when there are none (PyTorch would give NaN). */
  loss: tf.Scalar;
  /** Fraction of supervised positions whose argmax is the target (no gradient). */
  accuracy: tf.Scalar;
  /** Number of supervised positions (no gradient). */
  tokens: tf.Scalar;
};

/**
 * Masked softmax cross-entropy over the last axis: logits `[B, T, V]`, integer targets `[B, T]`.
 * Numerically stable (log-softmax), mean over the supervised positions only, PyTorch semantics for
 * `ignore_index` and `label_smoothing` (tested against `F.cross_entropy`).
 *
 * A supervised target outside `[0, V)` makes the loss NaN on purpose (a one-hot of it would be all
 * zeros and silently contribute 0); `assertFinite` then names the component.
 */
export function maskedCrossEntropy(
  op: string,
  logits: tf.Tensor3D,
  targets: tf.Tensor2D,
  options: CrossEntropyOptions = {},
): CrossEntropyResult {
  const ignoreIndex = options.ignoreIndex ?? -100;
  const eps = options.labelSmoothing ?? 0;
  if (logits.rank !== 3) throw new Error(`${op}: logits must be [B, T, V], got shape [${logits.shape}]`);
  if (targets.rank !== 2) throw new Error(`${op}: targets must be [B, T], got shape [${targets.shape}]`);
  if (targets.dtype !== 'int32') throw new Error(`${op}: targets must be int32, got ${targets.dtype}; cast them with tf.cast(t, 'int32')`);
  const [B, T, V] = logits.shape;
  if (targets.shape[0] !== B || targets.shape[1] !== T) {
    throw new Error(`${op}: targets [${targets.shape}] do not match logits [${logits.shape}] (expected [${B}, ${T}])`);
  }
  if (!(eps >= 0 && eps < 1)) throw new Error(`${op}: labelSmoothing must be in [0, 1), got ${eps}`);
  if (options.mask && !tf.util.arraysEqual(options.mask.shape, [B, T])) {
    throw new Error(`${op}: mask must be [${B}, ${T}] like the targets, got [${options.mask.shape}]`);
  }
  return tf.tidy(() => {
    const flatLogits = tf.reshape(logits, [B * T, V]); // [N, V]: 2-D keeps the wasm kernels on their fast path
    const flatTargets = tf.reshape(targets, [B * T]); // [N]
    let keep = tf.notEqual(flatTargets, tf.scalar(ignoreIndex, 'int32'));
    if (options.mask) keep = tf.logicalAnd(keep, tf.greater(tf.reshape(options.mask, [B * T]), 0));
    const weight = tf.cast(keep, 'float32'); // [N]
    const inRange = tf.logicalAnd(tf.greaterEqual(flatTargets, 0), tf.less(flatTargets, V));
    const safeTargets = tf.where(tf.logicalAnd(keep, inRange), flatTargets, tf.zerosLike(flatTargets));
    const oneHot = tf.oneHot(safeTargets, V); // [N, V], targets are data: no gradient needed through them
    const logp = tf.logSoftmax(flatLogits); // [N, V]
    let perToken = tf.neg(tf.sum(tf.mul(oneHot, logp), 1)); // [N]
    if (eps > 0) {
      const uniform = tf.neg(tf.mean(logp, 1)); // [N]: ε spread evenly over the V classes
      perToken = tf.add(tf.mul(perToken, 1 - eps), tf.mul(uniform, eps));
    }
    const count = tf.sum(weight);
    const denom = tf.maximum(count, 1);
    let loss = tf.div(tf.sum(tf.mul(perToken, weight)), denom) as tf.Scalar;
    const badTargets = tf.sum(tf.mul(weight, tf.cast(tf.logicalNot(inRange), 'float32')));
    loss = tf.where(tf.greater(badTargets, 0), tf.scalar(Number.NaN), loss);
    const hit = tf.cast(tf.equal(tf.argMax(flatLogits, 1), flatTargets), 'float32');
    const accuracy = tf.div(tf.sum(tf.mul(hit, weight)), denom) as tf.Scalar;
    return { loss, accuracy, tokens: count as tf.Scalar };
  });
}
