import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * A dense layer in PyTorch's `nn.Linear` layout: `weight` is `[out, in]`, `bias` is `[out]`, so
 * PyTorch and HF state dicts load without transposing. Initialised as PyTorch does
 * (`kaiming_uniform_(a=√5)`, i.e. U(−1/√in, 1/√in) for weight and bias).
 */
export class Linear extends Module {
  readonly weight: tf.Variable; // [out, in]
  readonly bias: tf.Variable | null; // [out]

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: { bias?: boolean; seed?: number } = {},
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    const seed = options.seed;
    this.weight = this.addParameter('weight', tf.randomUniform([outFeatures, inFeatures], -bound, bound, 'float32', seed));
    this.bias =
      options.bias === false
        ? null
        : this.addParameter('bias', tf.randomUniform([outFeatures], -bound, bound, 'float32', seed === undefined ? undefined : seed + 1));
  }

  /** `x` is `[M, in]`; returns `[M, out]` (a 2-D matMul: tfjs's batched matMul is slower). */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const y: tf.Tensor2D = tf.matMul(x, this.weight as tf.Tensor2D, false, true); // [M, out]
      return this.bias ? (tf.add(y, this.bias) as tf.Tensor2D) : y;
    });
  }
}
