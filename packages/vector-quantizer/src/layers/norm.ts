import { Module, groupNorm } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { VQInputError } from '../errors';

/**
 * Group normalisation (Wu & He 2018) on NHWC tensors: statistics per sample over each group of
 * `channels / groups` channels and all pixels, then a per-channel affine (`weight` = 1,
 * `bias` = 0 at init). VQGAN uses 32 groups and eps 1e-6. Exported for other packages.
 */
export class GroupNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly channels: number,
    readonly groups = 32,
    readonly eps = 1e-6,
  ) {
    super();
    if (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0) {
      throw new RangeError(
        `GroupNorm: ${channels} channels do not split into ${groups} groups; pick a group count that divides the channels`,
      );
    }
    this.weight = this.addParameter('weight', tf.ones([channels]));
    this.bias = this.addParameter('bias', tf.zeros([channels]));
  }

  /**
   * `[B, H, W, C]` → same shape; `activation: 'silu'` applies VQGAN's nonlinearity after it in the
   * same fused kernel (@ettjs/core `groupNorm`).
   */
  apply(x: tf.Tensor4D, activation: 'none' | 'silu' = 'none'): tf.Tensor4D {
    if (x.rank !== 4 || x.shape[3] !== this.channels)
      throw new VQInputError(`GroupNorm: expected [B, H, W, ${this.channels}], got [${x.shape}]`);
    return groupNorm(x, this.weight as tf.Tensor1D, this.bias as tf.Tensor1D, { groups: this.groups, eps: this.eps, activation });
  }
}
