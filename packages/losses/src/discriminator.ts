import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d } from './conv';
import { BatchStatNorm, GroupNorm } from './norm';

/** Configuration of the PatchGAN discriminator (pix2pix `NLayerDiscriminator`, as IBQ uses it). */
export interface PatchDiscriminatorConfig {
  /** Image channels. Defaults to 3. */
  inChannels: number;
  /** Filters of the first conv, `ndf`. Defaults to 64 [IBQ `disc_ndf`]. */
  baseChannels: number;
  /** Stride-2 conv layers, `n_layers`. Defaults to 3 [IBQ `disc_num_layers`]. */
  layers: number;
  /**
   * Normalisation after every conv but the first and the last. `'batch'` (default, IBQ): BatchNorm
   * with the statistics of each batch (see `BatchStatNorm` for why there are no running stats);
   * `'group'`: GroupNorm, batch-independent, for batch size 1; `'none'`.
   */
  norm: 'batch' | 'group' | 'none';
  /** Groups of `'group'` norm. Defaults to 32. */
  groups: number;
  /** Normalisation ε. Defaults to 1e-5 (PyTorch BatchNorm2d). */
  eps: number;
  /** LeakyReLU slope. Defaults to 0.2 [pix2pix]. */
  leakySlope: number;
  /** Std of the N(0, std) conv init. Defaults to 0.02 [pix2pix / IBQ `weights_init`]. */
  initStd: number;
  /** Seed of the init (each layer draws with `seed + index`). Defaults to an unseeded draw. */
  seed?: number;
}

export const DEFAULT_PATCH_DISCRIMINATOR_CONFIG: Readonly<PatchDiscriminatorConfig> = {
  inChannels: 3,
  baseChannels: 64,
  layers: 3,
  norm: 'batch',
  groups: 32,
  eps: 1e-5,
  leakySlope: 0.2,
  initStd: 0.02,
};

type Layer = Conv2d | BatchStatNorm | GroupNorm | 'leaky';

/** Holds the layers under PyTorch's `nn.Sequential` indices, so names read `main.3.weight` as in IBQ. */
class Sequential extends Module {
  readonly layers: Layer[] = [];
  add(layer: Layer): void {
    if (layer !== 'leaky') this.addModule(String(this.layers.length), layer);
    this.layers.push(layer);
  }
}

/**
 * PatchGAN discriminator [pix2pix; IBQ `modules/discriminator/model.py`]: 4×4 convs, padding 1,
 * `layers` stride-2 convs with filters `ndf·min(2^n, 8)`, one stride-1 conv, then a stride-1 conv
 * to one logit per patch; norm + LeakyReLU(0.2) between them (no norm after the first conv).
 * Images `[B, H, W, C]` in, patch logits `[B, h, w, 1]` out.
 *
 * Parameter names follow IBQ's checkpoint (`main.0.weight`, `main.3.bias`, ...) but conv weights
 * are `[k, k, in, out]` (tfjs) where PyTorch has `[out, in, k, k]`.
 */
export class PatchDiscriminator extends Module {
  readonly config: Readonly<PatchDiscriminatorConfig>;
  readonly #main: Sequential;

  constructor(config: Partial<PatchDiscriminatorConfig> = {}) {
    super();
    const c = { ...DEFAULT_PATCH_DISCRIMINATOR_CONFIG, ...config };
    for (const k of ['inChannels', 'baseChannels', 'layers'] as const) {
      if (!Number.isInteger(c[k]) || c[k] < 1) throw new Error(`PatchDiscriminator: ${k} must be a positive integer, got ${c[k]}`);
    }
    if (!['batch', 'group', 'none'].includes(c.norm))
      throw new Error(`PatchDiscriminator: norm must be 'batch', 'group' or 'none', got '${c.norm}'`);
    this.config = Object.freeze(c);
    const seed = (i: number) => (c.seed === undefined ? undefined : c.seed + i);
    const main = new Sequential();
    const conv = (cin: number, cout: number, stride: number, bias: boolean) =>
      new Conv2d(cin, cout, { kernel: 4, stride, padding: 1, bias, initStd: c.initStd, seed: seed(main.layers.length) });
    const norm = (ch: number) =>
      c.norm === 'batch' ? new BatchStatNorm(ch, c.eps, seed(main.layers.length)) : new GroupNorm(ch, Math.min(c.groups, ch), c.eps);
    const ndf = c.baseChannels;
    const useBias = c.norm !== 'batch'; // BatchNorm's β makes a conv bias redundant (pix2pix)
    main.add(conv(c.inChannels, ndf, 2, true));
    main.add('leaky');
    let mult = 1;
    for (let n = 1; n <= c.layers; n++) {
      const prev = mult;
      mult = Math.min(2 ** n, 8);
      main.add(conv(ndf * prev, ndf * mult, n < c.layers ? 2 : 1, useBias)); // the last of these is stride 1
      if (c.norm !== 'none') main.add(norm(ndf * mult));
      main.add('leaky');
    }
    main.add(conv(ndf * mult, 1, 1, true));
    this.#main = this.addModule('main', main);
  }

  /** Side of the logit map for an input side, or 0 if the image is too small for this depth. */
  outputSize(side: number): number {
    let s = side;
    for (let n = 0; n < this.config.layers; n++) s = Math.floor((s + 2 - 4) / 2) + 1;
    return Math.max(0, s - 2); // two stride-1 4×4 convs with padding 1 each remove one pixel
  }

  /** Patch logits `[B, h, w, 1]` for images `[B, H, W, C]`. */
  forward(images: tf.Tensor4D): tf.Tensor4D {
    const { inChannels, layers, leakySlope } = this.config;
    if (images.rank !== 4 || images.shape[3] !== inChannels) {
      throw new Error(`PatchDiscriminator: expected images [B, H, W, ${inChannels}], got [${images.shape}]`);
    }
    const [, H, W] = images.shape;
    if (this.outputSize(H) < 1 || this.outputSize(W) < 1) {
      const min = [...Array(64).keys()].map((i) => i + 1).find((s) => this.outputSize(s) >= 1);
      throw new Error(`PatchDiscriminator: images ${H}×${W} are too small for ${layers} layers (need a side ≥ ${min}); use fewer layers`);
    }
    return tf.tidy(() => {
      let x: tf.Tensor4D = images;
      for (const layer of this.#main.layers) x = layer === 'leaky' ? tf.leakyRelu(x, leakySlope) : layer.forward(x);
      return x;
    });
  }
}
