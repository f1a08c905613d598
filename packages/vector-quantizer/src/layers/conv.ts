import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { VQInputError } from '../errors';
import { type SeedSequence, torchDefaultUniform } from './init';

/**
 * How a convolution is computed. `native`: `tf.conv2d` (fastest where the backend has fast conv
 * kernels and their gradients, e.g. tfjs-node or the patched WASM backend). `im2col`: the k×k
 * shifted slices are concatenated and multiplied by the weights as one 2-D matMul; it needs only
 * slice/concat/matMul gradients, so it trains on stock WASM (which lacks Conv2DBackpropFilter) and
 * is faster than the cpu backend's conv gradient, at k²× the activation memory.
 */
export type ConvImpl = 'native' | 'im2col';

/** Conv2d options. */
export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  /** Square kernel side. */
  kernelSize: number;
  /** Defaults to 1. */
  stride?: number;
  /** Zero padding: symmetric pixels, `[top, bottom, left, right]`, or `same` (`(k−1)/2`, odd k). Defaults to `same`. */
  padding?: number | [number, number, number, number] | 'same';
  /** Defaults to true. */
  bias?: boolean;
  /** Defaults to `native`. */
  impl?: ConvImpl;
  /** Seeds for the initialisation (PyTorch's default uniform). */
  seeds: SeedSequence;
}

/**
 * 2-D convolution on NHWC tensors with HWIO weights (`weight` `[k, k, in, out]`, `bias` `[out]`),
 * initialised as PyTorch's `nn.Conv2d`. Exported for other packages (the PatchGAN discriminator).
 */
export class Conv2d extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly stride: number;
  readonly pad: [number, number, number, number];
  readonly impl: ConvImpl;

  constructor(o: Conv2dOptions) {
    super();
    const { inChannels, outChannels, kernelSize: k } = o;
    for (const [name, v] of [
      ['inChannels', inChannels],
      ['outChannels', outChannels],
      ['kernelSize', k],
      ['stride', o.stride ?? 1],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`Conv2d: ${name} must be an integer >= 1, got ${v}`);
    }
    const padding = o.padding ?? 'same';
    if (padding === 'same' && k % 2 === 0)
      throw new RangeError(`Conv2d: 'same' padding needs an odd kernel, got ${k}; pass explicit padding`);
    const p = padding === 'same' ? (k - 1) / 2 : padding;
    this.pad = typeof p === 'number' ? [p, p, p, p] : p;
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = k;
    this.stride = o.stride ?? 1;
    this.impl = o.impl ?? 'native';
    const fanIn = inChannels * k * k;
    this.weight = this.addParameter('weight', torchDefaultUniform([k, k, inChannels, outChannels], fanIn, o.seeds.next()));
    this.bias = o.bias === false ? null : this.addParameter('bias', torchDefaultUniform([outChannels], fanIn, o.seeds.next()));
  }

  /** `[B, H, W, in]` → `[B, H', W', out]`. */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    if (x.rank !== 4 || x.shape[3] !== this.inChannels) {
      throw new VQInputError(`Conv2d: expected [B, H, W, ${this.inChannels}], got [${x.shape}]`);
    }
    return tf.tidy(() => {
      const [t, b, l, r] = this.pad;
      const padded = t > 0 || b > 0 || l > 0 || r > 0;
      const padX = () =>
        padded
          ? tf.pad(x, [
              [0, 0],
              [t, b],
              [l, r],
              [0, 0],
            ])
          : x;
      const k = this.kernelSize;
      const w = this.weight as tf.Tensor4D;
      let y: tf.Tensor4D;
      if (k === 1 && this.stride === 1) {
        // A 1×1 conv is a dense layer over pixels: one 2-D matMul (fast on every backend).
        const xp = padX();
        const [bs, h, wd] = xp.shape;
        y = tf.reshape(tf.matMul(tf.reshape(xp, [-1, this.inChannels]), tf.reshape(w, [this.inChannels, this.outChannels])), [
          bs,
          h,
          wd,
          this.outChannels,
        ]);
      } else if (this.impl === 'native') {
        // The padding goes to the conv kernel itself (explicit, possibly asymmetric): no padded copy
        // of the input forward, and no Slice of the gradient backward.
        const pad: tf.backend_util.ExplicitPadding = [
          [0, 0],
          [t, b],
          [l, r],
          [0, 0],
        ];
        // With a bias: one FusedConv2D kernel (on the native wasm kernels the bias starts the conv's
        // accumulators) instead of Conv2D and an Add over the output.
        if (this.bias) return tf.fused.conv2d({ x, filter: w, strides: this.stride, pad: padded ? pad : 'valid', bias: this.bias });
        y = tf.conv2d(x, w, this.stride, padded ? pad : 'valid');
      } else {
        y = this.#im2col(padX());
      }
      return this.bias ? tf.add(y, this.bias) : y;
    });
  }

  #im2col(xp: tf.Tensor4D): tf.Tensor4D {
    const [bs, hp, wp, c] = xp.shape;
    const k = this.kernelSize;
    const s = this.stride;
    const ho = Math.floor((hp - k) / s) + 1;
    const wo = Math.floor((wp - k) / s) + 1;
    if (ho < 1 || wo < 1) throw new VQInputError(`Conv2d: input [${xp.shape}] (padded) is smaller than the ${k}×${k} kernel`);
    // Strided taps without stridedSlice (it has no gradient in tfjs): take an s·ho × s·wo window,
    // fold each stride group into its own axis with rank-3 reshapes, keep offset 0. The extra
    // bottom/right zeros (at most s − 1) are never sampled.
    const extraH = s * ho + k - 1 - hp;
    const extraW = s * wo + k - 1 - wp;
    const x =
      s > 1 && (extraH > 0 || extraW > 0)
        ? tf.pad(xp, [
            [0, 0],
            [0, extraH],
            [0, extraW],
            [0, 0],
          ])
        : xp;
    const tap = (i: number, j: number): tf.Tensor => {
      if (s === 1) return tf.slice(x, [0, i, j, 0], [bs, ho, wo, c]);
      const win = tf.slice(x, [0, i, j, 0], [bs, s * ho, s * wo, c]);
      const rows = tf.slice(tf.reshape(win, [bs * ho, s, s * wo * c]), [0, 0, 0], [-1, 1, -1]); // every s-th row
      return tf.slice(tf.reshape(rows, [bs * ho * wo, s, c]), [0, 0, 0], [-1, 1, -1]); // every s-th column
    };
    const cols: tf.Tensor[] = [];
    // Column order (i, j, channel) matches the HWIO weight reshaped to [k·k·in, out].
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) cols.push(tf.reshape(tap(i, j), [bs * ho * wo, c]));
    const patches = tf.concat(cols, 1); // [B·ho·wo, k·k·in]
    const y = tf.matMul(patches, tf.reshape(this.weight, [k * k * c, this.outChannels]));
    return tf.reshape(y, [bs, ho, wo, this.outChannels]);
  }
}
