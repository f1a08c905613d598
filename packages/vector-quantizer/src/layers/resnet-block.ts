import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { type ConvImpl, Conv2d } from './conv';
import type { SeedSequence } from './init';
import { GroupNorm } from './norm';

/** Shared layer settings of the VQGAN encoder/decoder. */
export interface LayerSettings {
  normGroups: number;
  normEps: number;
  conv: ConvImpl;
  seeds: SeedSequence;
}

/**
 * VQGAN's ResnetBlock: `x + conv2(silu(norm2(conv1(silu(norm1(x))))))`, with a 1×1
 * `nin_shortcut` when the channel count changes; each GroupNorm + SiLU runs as one fused `groupNorm`. (Dropout is 0 in IBQ's config and is omitted.)
 */
export class ResnetBlock extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly ninShortcut: Conv2d | null;

  constructor(inChannels: number, outChannels: number, s: LayerSettings) {
    super();
    this.norm1 = this.addModule('norm1', new GroupNorm(inChannels, s.normGroups, s.normEps));
    this.conv1 = this.addModule('conv1', new Conv2d({ inChannels, outChannels, kernelSize: 3, seeds: s.seeds, impl: s.conv }));
    this.norm2 = this.addModule('norm2', new GroupNorm(outChannels, s.normGroups, s.normEps));
    this.conv2 = this.addModule('conv2', new Conv2d({ inChannels: outChannels, outChannels, kernelSize: 3, seeds: s.seeds, impl: s.conv }));
    this.ninShortcut =
      inChannels === outChannels
        ? null
        : this.addModule('nin_shortcut', new Conv2d({ inChannels, outChannels, kernelSize: 1, seeds: s.seeds, impl: s.conv }));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const h = this.conv1.apply(this.norm1.apply(x, 'silu'));
      const out = this.conv2.apply(this.norm2.apply(h, 'silu'));
      return tf.add(this.ninShortcut ? this.ninShortcut.apply(x) : x, out);
    });
  }
}
