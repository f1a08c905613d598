import * as tf from '@tensorflow/tfjs-core';

/** The fused SwiGLU kernel's name, registered by @ettjs/backend for wasm and cpu (its src/fused/swiglu.ts). */
export const SWIGLU_KERNEL = 'EttSwiGLU';

/**
 * SwiGLU's gating, `silu(gate) · up` = `gate · σ(gate) · up` (Shazeer 2020; LLaMA's and Qwen2's MLP
 * between its projections). Runs the fused `EttSwiGLU` kernel (one pass forward, one backward) where
 * the active backend has it, else the same formula in tfjs ops.
 */
export function swiGlu<T extends tf.Tensor>(gate: T, up: T): T {
  if (!tf.util.arraysEqual(gate.shape, up.shape))
    throw new RangeError(`swiGlu: gate [${gate.shape}] and up [${up.shape}] must have one shape`);
  if (gate.dtype === 'float32' && up.dtype === 'float32' && gate.size > 0 && tf.getKernel(SWIGLU_KERNEL, tf.getBackend()) != null) {
    return tf.engine().runKernel(SWIGLU_KERNEL, { gate, up }, {}) as T;
  }
  // silu(g) = g · sigmoid(g), written out so its gradient is the plain product rule on every backend.
  return tf.tidy(() => tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as T);
}
