import * as tf from '@tensorflow/tfjs-core';

/**
 * Group normalisation of an NHWC tensor without the affine part: each sample's channels are split
 * into `groups` contiguous groups, and each group is normalised by its mean and population variance
 * over H, W and its channels, `(x − mean) / sqrt(var + eps)` (torch.nn.functional.group_norm).
 *
 * The groups are first moved next to each other ([B, G, H·W·C/G]) so that both reductions run over
 * the innermost axis: `tf.moments` over axes [1, 3] of [B, H·W, G, C/G] transposes inside every
 * reduction, forward and backward, and took 1.6× as long forward+backward on wasm.
 */
export function groupNormalize(x: tf.Tensor4D, groups: number, eps: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new RangeError(`groupNormalize: ${c} channels do not split into ${groups} groups; pick a group count that divides the channels`);
  }
  return tf.tidy(() => {
    const cg = c / groups;
    const grouped = tf.reshape(tf.transpose(tf.reshape(x, [b, h * w, groups, cg]), [0, 2, 1, 3]), [b, groups, h * w * cg]);
    const centred = tf.sub(grouped, tf.mean(grouped, 2, true));
    const variance = tf.mean(tf.square(centred), 2, true);
    const normed = tf.mul(centred, tf.rsqrt(tf.add(variance, eps)));
    return tf.reshape(tf.transpose(tf.reshape(normed, [b, groups, h * w, cg]), [0, 2, 1, 3]), [b, h, w, c]);
  });
}

/** The fused kernel's name, registered by @ettjs/backend for wasm, cpu (its src/fused/group-norm.ts) and webgpu (src/webgpu/group-norm.ts). */
export const GROUP_NORM_KERNEL = 'EttGroupNorm';

export interface GroupNormOptions {
  /** Channel groups; must divide the channels. */
  groups: number;
  /** Added to the variance. */
  eps: number;
  /** Applied after the affine part: `'silu'` (x·σ(x), VQGAN's GroupNorm → nonlinearity) or none. Defaults to `'none'`. */
  activation?: 'none' | 'silu';
}

/**
 * GroupNorm with its per-channel affine, optionally followed by SiLU:
 * `act(groupNormalize(x) · gamma + beta)` for NHWC `x` `[B, H, W, C]`, gamma and beta `[C]`.
 * Runs as one fused kernel forward and one backward where the active backend has them (@ettjs/backend
 * registers them for wasm, cpu and webgpu), else as the same composition of tfjs ops.
 */
export function groupNorm(x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, options: GroupNormOptions): tf.Tensor4D {
  const { groups, eps } = options;
  const activation = options.activation ?? 'none';
  const c = x.shape[3];
  if (x.rank !== 4) throw new RangeError(`groupNorm: x must be [B, H, W, C], got [${x.shape}]`);
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new RangeError(`groupNorm: ${c} channels do not split into ${groups} groups; pick a group count that divides the channels`);
  }
  if (gamma.rank !== 1 || gamma.shape[0] !== c || beta.rank !== 1 || beta.shape[0] !== c) {
    throw new RangeError(`groupNorm: gamma and beta must be [${c}], got [${gamma.shape}] and [${beta.shape}]`);
  }
  if (x.dtype === 'float32' && tf.getKernel(GROUP_NORM_KERNEL, tf.getBackend()) != null) {
    return tf.engine().runKernel(GROUP_NORM_KERNEL, { x, gamma, beta }, { groups, eps, activation }) as tf.Tensor4D;
  }
  return tf.tidy(() => {
    const y = tf.add(tf.mul(groupNormalize(x, groups, eps), gamma), beta);
    return (activation === 'silu' ? tf.mul(y, tf.sigmoid(y)) : y) as tf.Tensor4D;
  });
}

/** The fused RMSNorm kernel's name, registered by @ettjs/backend for wasm and cpu (its src/fused/rms-norm.ts). */
export const RMS_NORM_KERNEL = 'EttRMSNorm';

/**
 * RMSNorm as LLaMA and Qwen2 define it, over the last axis: `w · x / sqrt(mean(x²) + eps)` (no mean
 * subtraction, no bias). Runs the fused `EttRMSNorm` kernel (one pass forward, one backward) where
 * the active backend has it, else the same formula in tfjs ops.
 */
export function rmsNorm<T extends tf.Tensor>(x: T, weight: tf.Tensor1D, eps: number): T {
  const c = x.shape[x.rank - 1];
  if (x.rank < 1 || weight.rank !== 1 || weight.shape[0] !== c) {
    throw new RangeError(`rmsNorm: weight must be [${c}] for x [${x.shape}], got [${weight.shape}]`);
  }
  if (!(eps >= 0)) throw new RangeError(`rmsNorm: eps must be >= 0, got ${eps}`);
  if (x.dtype === 'float32' && weight.dtype === 'float32' && x.size > 0 && tf.getKernel(RMS_NORM_KERNEL, tf.getBackend()) != null) {
    return tf.engine().runKernel(RMS_NORM_KERNEL, { x, weight }, { eps }) as T;
  }
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, eps))), weight) as T;
  });
}
