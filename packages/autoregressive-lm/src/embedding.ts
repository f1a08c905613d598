import { Module, seededRandomNormal } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/** A token embedding table `weight` `[V, C]` (PyTorch's `nn.Embedding` layout and name). */
export class Embedding extends Module {
  weight: tf.Variable; // [V, C]

  constructor(
    public numEmbeddings: number,
    readonly embeddingDim: number,
    options: { std?: number; seed?: number } = {},
  ) {
    super();
    this.weight = this.addParameter('weight', seededRandomNormal([numEmbeddings, embeddingDim], 0, options.std ?? 0.02, options.seed));
  }

  /**
   * Rows for `ids` `[B, T]` (int32, already range-checked by the caller) → `[B, T, C]`. The ids are
   * an input, not computed on the tape, so `gather` has a gradient wrt the table (MEASUREMENTS §2).
   */
  apply(ids: tf.Tensor2D): tf.Tensor3D {
    const [b, t] = ids.shape;
    return tf.tidy(() => tf.reshape(tf.gather(this.weight, tf.reshape(ids, [b * t])), [b, t, this.embeddingDim]));
  }
}
