import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * A perceptual distance between images `[B, H, W, C]` in [-1, 1], mean over the batch. `kind`
 * says which one a run used (`'lpips'`, `'structural'`, ...), and the objective logs it.
 */
export interface PerceptualLoss {
  readonly kind: string;
  compute(x: tf.Tensor4D, y: tf.Tensor4D): tf.Scalar;
}

/**
 * A feature extractor for LPIPS: images (already shifted/scaled, see `LpipsLoss`) to a list of
 * feature maps `[B, h_l, w_l, C_l]`. For LPIPS-VGG these are VGG16's relu1_2, relu2_2, relu3_3,
 * relu4_3 and relu5_3. If it is a `Module`, its weights appear in `LpipsLoss`'s state dict as
 * `net.*` and are loaded with it.
 */
export interface FeatureNetwork {
  features(x: tf.Tensor4D): tf.Tensor4D[];
}

/**
 * LPIPS distance on given features [richzhang/PerceptualSimilarity; IBQ `lpips.py`]: per layer,
 * unit-normalise each position's channel vector (`f / ‖f‖`), square the difference, weight
 * channels by the layer's 1×1 `lin` weights, sum channels, average space; sum layers; mean over the batch.
 */
export function lpipsDistance(featuresX: tf.Tensor4D[], featuresY: tf.Tensor4D[], lin: tf.Tensor1D[]): tf.Scalar {
  if (featuresX.length !== featuresY.length || featuresX.length !== lin.length) {
    throw new Error(
      `lpipsDistance: got ${featuresX.length} and ${featuresY.length} feature maps and ${lin.length} lin weights; they must match`,
    );
  }
  featuresX.forEach((fx, l) => {
    const C = fx.shape[3];
    if (!tf.util.arraysEqual(fx.shape, featuresY[l].shape) || lin[l].shape[0] !== C) {
      throw new Error(
        `lpipsDistance: layer ${l}: features [${fx.shape}] vs [${featuresY[l].shape}], lin [${lin[l].shape}] (expected [${C}])`,
      );
    }
  });
  return tf.tidy(() => {
    // f/√(‖f‖² + 1e-20) rather than LPIPS's f/(‖f‖ + 1e-10): the same value wherever ‖f‖ ≫ 1e-10, but a
    // finite gradient where a ReLU zeroes a whole channel vector (√ has an infinite slope at 0 → NaN).
    const unit = (f: tf.Tensor4D) => tf.mul(f, tf.rsqrt(tf.add(tf.sum(tf.square(f), 3, true), 1e-20)));
    let total: tf.Tensor = tf.zeros([featuresX[0].shape[0]]); // [B]
    featuresX.forEach((fx, l) => {
      const d = tf.sum(tf.mul(tf.square(tf.sub(unit(fx), unit(featuresY[l]))), lin[l]), 3); // [B, h, w]
      total = tf.add(total, tf.mean(d, [1, 2]));
    });
    return tf.mean(total) as tf.Scalar;
  });
}

/** Options of `LpipsLoss`. */
export interface LpipsLossOptions {
  /** Channels of each feature map, to size the `lin` weights (loaded later from LPIPS's `vgg.pth`). */
  channels: number[];
  /**
   * Apply LPIPS's ScalingLayer, `(x − shift)/scale` with shift [-0.030, -0.088, -0.188] and scale
   * [0.458, 0.448, 0.450], which maps [-1, 1] images to ImageNet statistics. Defaults to true.
   */
  scaling?: boolean;
}

/**
 * LPIPS with a user-supplied feature network. Pretrained VGG16 and LPIPS weights cannot be
 * downloaded here, so nothing is built in: convert them once with PyTorch and load them from local
 * files (see the package README): `net.*` from torchvision's VGG16 `features`, `lin0.weight` ...
 * `lin4.weight` from LPIPS's `vgg.pth` (`lin{l}.model.1.weight`, shape `[1, C, 1, 1]`, flattened).
 * Both are frozen: the loss trains only what produced the images. `lin` starts at ones (plain
 * squared feature distance) until weights are loaded.
 */
export class LpipsLoss extends Module implements PerceptualLoss {
  readonly kind = 'lpips';
  readonly lin: tf.Variable[];
  readonly scaling: boolean;

  constructor(
    readonly network: FeatureNetwork,
    options: LpipsLossOptions,
  ) {
    super();
    if (network instanceof Module) this.addModule('net', network);
    this.lin = options.channels.map((c, l) => this.addParameter(`lin${l}`, tf.ones([c]), { trainable: false }));
    this.scaling = options.scaling ?? true;
    this.freeze();
  }

  compute(x: tf.Tensor4D, y: tf.Tensor4D): tf.Scalar {
    if (!tf.util.arraysEqual(x.shape, y.shape) || x.rank !== 4)
      throw new Error(`LpipsLoss: images must be [B, H, W, C] of one shape, got [${x.shape}] and [${y.shape}]`);
    return tf.tidy(() => {
      const prep = (im: tf.Tensor4D): tf.Tensor4D =>
        this.scaling ? tf.div(tf.sub(im, tf.tensor1d([-0.03, -0.088, -0.188])), tf.tensor1d([0.458, 0.448, 0.45])) : im;
      const fx = this.network.features(prep(x));
      const fy = this.network.features(prep(y));
      if (fx.length !== this.lin.length)
        throw new Error(`LpipsLoss: the network returned ${fx.length} feature maps, expected ${this.lin.length}`);
      return lpipsDistance(fx, fy, this.lin as tf.Tensor1D[]);
    });
  }
}
