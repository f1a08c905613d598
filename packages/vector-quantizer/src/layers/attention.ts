import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { Conv2d } from './conv';
import { GroupNorm } from './norm';
import type { LayerSettings } from './resnet-block';

/**
 * VQGAN's single-head spatial self-attention: `x + proj_out(softmax(q·kᵀ/√C)·v)` over the H·W
 * positions, with q, k, v from 1×1 convs on `norm(x)`.
 */
export class AttnBlock extends Module {
  readonly norm: GroupNorm;
  readonly q: Conv2d;
  readonly k: Conv2d;
  readonly v: Conv2d;
  readonly projOut: Conv2d;

  constructor(
    readonly channels: number,
    s: LayerSettings,
  ) {
    super();
    const conv1x1 = () => new Conv2d({ inChannels: channels, outChannels: channels, kernelSize: 1, seeds: s.seeds, impl: s.conv });
    this.norm = this.addModule('norm', new GroupNorm(channels, s.normGroups, s.normEps));
    this.q = this.addModule('q', conv1x1());
    this.k = this.addModule('k', conv1x1());
    this.v = this.addModule('v', conv1x1());
    this.projOut = this.addModule('proj_out', conv1x1());
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const n = this.norm.apply(x);
      const flat = (t: tf.Tensor4D) => tf.reshape(t, [b, h * w, c]) as tf.Tensor3D;
      const q = flat(this.q.apply(n)); // [B, HW, C]
      const k = flat(this.k.apply(n));
      const v = flat(this.v.apply(n));
      const attn = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(c))); // [B, HW, HW]
      const out = tf.reshape(tf.matMul(attn, v), [b, h, w, c]) as tf.Tensor4D;
      return tf.add(x, this.projOut.apply(out));
    });
  }
}
