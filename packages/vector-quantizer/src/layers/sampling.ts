import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { type ConvImpl, Conv2d } from './conv';
import type { SeedSequence } from './init';

/**
 * Nearest-neighbour ×2 upsampling by reshape + concat (rank ≤ 3). Not
 * `tf.image.resizeNearestNeighbor`: its cpu gradient is wrong for batch > 1 (MEASUREMENTS).
 */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    // concat, not tile: wasm's Tile kernel is two orders of magnitude slower than a copy.
    const px = tf.reshape(x, [b * h * w, 1, c]);
    const wide = tf.reshape(tf.concat([px, px], 1), [b * h, 1, 2 * w * c]); // each pixel twice along W
    return tf.reshape(tf.concat([wide, wide], 1), [b, 2 * h, 2 * w, c]); // each row twice along H
  });
}

/** VQGAN's upsampling: nearest ×2, then a 3×3 conv. */
export class Upsample extends Module {
  readonly conv: Conv2d;
  constructor(channels: number, seeds: SeedSequence, impl: ConvImpl) {
    super();
    this.conv = this.addModule('conv', new Conv2d({ inChannels: channels, outChannels: channels, kernelSize: 3, seeds, impl }));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.conv.apply(upsampleNearest2x(x)));
  }
}

/** VQGAN's downsampling: pad (0, 1, 0, 1), then a 3×3 conv with stride 2 (no pooling: it halves H and W). */
export class Downsample extends Module {
  readonly conv: Conv2d;
  constructor(channels: number, seeds: SeedSequence, impl: ConvImpl) {
    super();
    this.conv = this.addModule(
      'conv',
      new Conv2d({ inChannels: channels, outChannels: channels, kernelSize: 3, stride: 2, padding: [0, 1, 0, 1], seeds, impl }),
    );
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return this.conv.apply(x);
  }
}
