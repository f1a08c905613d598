import { Module, seededRandomNormal } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/** Options of `Conv2d`. */
export interface Conv2dOptions {
  /** Square kernel side. */
  kernel: number;
  /** Stride. Defaults to 1. */
  stride?: number;
  /** Zero padding on every side, PyTorch's `padding=p`. Defaults to 0. */
  padding?: number;
  /** Whether to add a bias. Defaults to true. */
  bias?: boolean;
  /** Std of the N(0, std) weight init. Defaults to 0.02 (pix2pix / IBQ `weights_init`). */
  initStd?: number;
  /** Seed of the weight init. Defaults to an unseeded draw. */
  seed?: number;
}

/**
 * A 2-D convolution on NHWC with PyTorch's symmetric `padding`. tfjs `'same'` pads asymmetrically
 * for even kernels (k = 4, s = 2 pads 1 before and 2 after), which is not PyTorch's padding=1, so
 * the padding is passed to the kernel explicitly. Weight `[k, k, in, out]` (tfjs layout;
 * PyTorch stores `[out, in, k, k]`: transpose `[2, 3, 1, 0]` to load one). Bias starts at 0.
 */
export class Conv2d extends Module {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;
  readonly stride: number;
  readonly padding: number;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    options: Conv2dOptions,
  ) {
    super();
    const k = options.kernel;
    for (const [name, v] of [
      ['inChannels', inChannels],
      ['outChannels', outChannels],
      ['kernel', k],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`Conv2d: ${name} must be a positive integer, got ${v}`);
    }
    this.stride = options.stride ?? 1;
    this.padding = options.padding ?? 0;
    this.weight = this.addParameter(
      'weight',
      seededRandomNormal([k, k, inChannels, outChannels], 0, options.initStd ?? 0.02, options.seed),
    );
    if (options.bias ?? true) this.bias = this.addParameter('bias', tf.zeros([outChannels]));
  }

  /** `[B, H, W, inChannels]` → `[B, H', W', outChannels]`, `H' = ⌊(H + 2p − k)/s⌋ + 1`. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    if (x.rank !== 4 || x.shape[3] !== this.inChannels) {
      throw new Error(`Conv2d: expected input [B, H, W, ${this.inChannels}], got [${x.shape}]`);
    }
    return tf.tidy(() => {
      const p = this.padding;
      // The padding goes to the conv kernel (explicit padding): no padded copy of the input forward
      // and no Slice of its gradient backward.
      const pad: tf.backend_util.ExplicitPadding = [
        [0, 0],
        [p, p],
        [p, p],
        [0, 0],
      ];
      const filter = this.weight as tf.Tensor4D;
      const padding = p > 0 ? pad : 'valid';
      // With a bias: one FusedConv2D kernel (on the native wasm kernels the bias starts the conv's
      // accumulators) instead of Conv2D and an Add over the output.
      return this.bias
        ? tf.fused.conv2d({ x, filter, strides: this.stride, pad: padding, bias: this.bias })
        : tf.conv2d(x, filter, this.stride, padding);
    });
  }
}
