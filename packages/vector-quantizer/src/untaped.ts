import * as tf from '@tensorflow/tfjs-core';

/**
 * Runs `fn` with the gradient tape off and returns its result detached from every input.
 *
 * Why: code indices are computed from the encoder output `z`, but in tfjs `gather(table, idx)`
 * fails in backprop ("gradient of input indices must have 'float32' dtype") when `idx` depends on
 * a taped tensor, and a taped argMax keeps its `[N, K]` logits alive until backprop. Ops inside
 * a `customGrad` forward are never recorded (the engine raises its kernel depth), and a dummy
 * input makes the result independent of `z` in the tape's eyes, so gathering with it is safe.
 */
export function untaped<T extends tf.Tensor>(fn: () => T): T {
  const dummy = tf.scalar(0);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const d = args[0] as tf.Tensor;
    return { value: fn(), gradFunc: () => [tf.zerosLike(d)] };
  });
  const out = f(dummy) as T;
  dummy.dispose();
  return out;
}
