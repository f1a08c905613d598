import { Module, groupNorm, seededRandomNormal } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * BatchNorm2d as IBQ's discriminator uses it during training: every call normalises with the mean
 * and (biased) variance of the batch it sees, over `[B, H, W]` per channel, then applies the
 * learned affine `weight` (γ, init N(1, 0.02) as pix2pix `weights_init`) and `bias` (β, init 0).
 *
 * There are no running statistics: IBQ's discriminator is only ever run in training mode (the
 * Lightning module is in train mode for both the generator and the discriminator step), so running
 * averages never reach a loss; keeping them would need a variable update inside the taped function.
 * A PyTorch checkpoint's `running_mean` / `running_var` / `num_batches_tracked` are therefore not
 * loaded. With batch size 1 and tiny feature maps batch statistics get noisy: use `GroupNorm`.
 */
export class BatchStatNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly channels: number,
    readonly eps = 1e-5,
    seed?: number,
  ) {
    super();
    this.weight = this.addParameter('weight', seededRandomNormal([channels], 1, 0.02, seed));
    this.bias = this.addParameter('bias', tf.zeros([channels]));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    if (x.rank !== 4 || x.shape[3] !== this.channels)
      throw new Error(`BatchStatNorm: expected [B, H, W, ${this.channels}], got [${x.shape}]`);
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, [0, 1, 2], true); // [1, 1, 1, C]
      const xhat = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(xhat, this.weight), this.bias);
    });
  }
}

/**
 * GroupNorm (Wu & He 2018): per sample, channels split into `groups`, normalised over
 * `[H, W, C/groups]`, then a per-channel affine. Batch-independent and stateless, so it behaves the
 * same at batch size 1 and in every call; the discriminator's alternative to `BatchStatNorm`.
 */
export class GroupNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly channels: number,
    readonly groups: number,
    readonly eps = 1e-5,
  ) {
    super();
    if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
      throw new Error(`GroupNorm: channels (${channels}) must be divisible by groups (${groups})`);
    }
    this.weight = this.addParameter('weight', tf.ones([channels]));
    this.bias = this.addParameter('bias', tf.zeros([channels]));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    if (x.rank !== 4 || x.shape[3] !== this.channels) throw new Error(`GroupNorm: expected [B, H, W, ${this.channels}], got [${x.shape}]`);
    return groupNorm(x, this.weight as tf.Tensor1D, this.bias as tf.Tensor1D, { groups: this.groups, eps: this.eps });
  }
}
