import * as tf from '@tensorflow/tfjs-core';

/** Hands out distinct seeds, one per tensor, so a model built twice with one seed is identical. */
export class SeedSequence {
  #next: number;
  constructor(seed: number) {
    this.#next = Math.floor(seed) * 100_003;
  }
  next(): number {
    return this.#next++;
  }
}

/**
 * PyTorch's default Conv2d/Linear initialisation: `kaiming_uniform_(a=√5)` for weights, which is
 * `U(−1/√fan_in, 1/√fan_in)`, and the same bound for biases.
 */
export function torchDefaultUniform(shape: number[], fanIn: number, seed: number): tf.Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  return tf.randomUniform(shape, -bound, bound, 'float32', seed);
}
