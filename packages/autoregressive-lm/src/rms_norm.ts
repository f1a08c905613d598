import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/** RMSNorm as LLaMA/Qwen2 define it: `w · x / sqrt(mean(x²) + eps)` over the last axis (no mean, no bias). */
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
    return tf.tidy(() => {
      const variance = tf.mean(tf.square(x), -1, true);
      return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, this.eps))), this.weight) as T;
    });
  }
}
