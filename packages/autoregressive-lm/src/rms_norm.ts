import { Module, rmsNorm } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * RMSNorm as LLaMA/Qwen2 define it: `w · x / sqrt(mean(x²) + eps)` over the last axis (no mean, no
 * bias); @ettjs/core's `rmsNorm`, a fused kernel where the backend has one.
 */
export class RMSNorm extends Module {
  readonly weight: tf.Variable; // [C]

  constructor(
    readonly size: number,
    readonly eps: number,
  ) {
    super();
    this.weight = this.addParameter('weight', tf.ones([size]));
  }

  apply<T extends tf.Tensor>(x: T): T {
    return rmsNorm(x, this.weight as tf.Tensor1D, this.eps);
  }
}
