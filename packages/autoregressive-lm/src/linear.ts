import { Module, seededRandomNormal } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

export interface LinearOptions {
  inFeatures: number;
  outFeatures: number;
  /** Adds a `bias` parameter `[out]`. Defaults to false. */
  bias?: boolean;
  /** Std of the normal weight init (HF `initializer_range`). Defaults to 0.02. */
  std?: number;
  /** Seed of the weight init. Defaults to unseeded. */
  seed?: number;
}

/**
 * A dense layer `y = x W + b` whose parameters carry PyTorch's names (`weight`, `bias`).
 *
 * The weight is stored `[in, out]`, the transpose of PyTorch's `[out, in]`: the forward is then a
 * plain 2-D matMul, the only form XNNPACK runs fast on the wasm backend (MEASUREMENTS §3).
 * HF checkpoints are transposed when loaded and saved (see `hf_checkpoint.ts`).
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: tf.Variable; // [in, out]
  readonly bias: tf.Variable | null; // [out]

  constructor(options: LinearOptions) {
    super();
    const { inFeatures, outFeatures } = options;
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = this.addParameter('weight', seededRandomNormal([inFeatures, outFeatures], 0, options.std ?? 0.02, options.seed));
    this.bias = options.bias ? this.addParameter('bias', tf.zeros([outFeatures])) : null;
  }

  /** `[N, in]` to `[N, out]`. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    if (x.rank !== 2 || x.shape[1] !== this.inFeatures) {
      throw new Error(`Linear: expected input [N, ${this.inFeatures}], got [${x.shape}]`);
    }
    const y = tf.matMul(x, this.weight as tf.Tensor2D) as tf.Tensor2D;
    return this.bias ? (tf.add(y, this.bias) as tf.Tensor2D) : y;
  }
}
