import * as tf from '@tensorflow/tfjs-core';

/**
 * Which GELU: `'gelu'` is the exact form `x·Φ(x) = 0.5·x·(1 + erf(x/√2))`, PyTorch's `nn.GELU()`
 * default and what LLaVA's projector uses; `'gelu-tanh'` is the tanh approximation
 * (`nn.GELU(approximate='tanh')`, GPT-2's `gelu_new`).
 */
export type GeluKind = 'gelu' | 'gelu-tanh';

const SQRT1_2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * GELU on tfjs-core ops (tfjs-core has no GELU op; tf.layers' one cannot be used here). Built
 * from `erf`/`tanh`, whose gradients tfjs registers, so it differentiates without a custom grad.
 */
export function gelu<T extends tf.Tensor>(x: T, kind: GeluKind = 'gelu'): T {
  return tf.tidy(() => {
    if (kind === 'gelu') {
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, SQRT1_2)))) as T;
    }
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner))) as T;
  });
}
