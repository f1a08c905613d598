import { Module, ModuleList } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { AttnBlock } from './layers/attention';
import { Conv2d } from './layers/conv';
import { GroupNorm } from './layers/norm';
import { type LayerSettings, ResnetBlock } from './layers/resnet-block';
import { Downsample } from './layers/sampling';

/** The conv trunk's shape (shared by encoder and decoder; see `VQTokenizerConfig`). */
export interface ConvTrunkConfig {
  imageChannels: number;
  ch: number;
  chMult: number[];
  numResBlocks: number;
  /** Levels (0 = full resolution) whose ResNet blocks are followed by self-attention. */
  attnLevels: number[];
  midAttention: boolean;
  zChannels: number;
}

/** One resolution level: ResNet blocks (each optionally followed by attention), then a resampler. */
export class Level<R extends Module> extends Module {
  readonly block = this.addModule('block', new ModuleList<ResnetBlock>());
  readonly attn = this.addModule('attn', new ModuleList<AttnBlock>());
  sample: R | null = null;
  setSample(name: string, m: R): void {
    this.sample = this.addModule(name, m);
  }
}

/** The middle: ResNet block, optional attention, ResNet block. */
export class Mid extends Module {
  readonly block1: ResnetBlock;
  readonly attn1: AttnBlock | null;
  readonly block2: ResnetBlock;
  constructor(channels: number, attention: boolean, s: LayerSettings) {
    super();
    this.block1 = this.addModule('block_1', new ResnetBlock(channels, channels, s));
    this.attn1 = attention ? this.addModule('attn_1', new AttnBlock(channels, s)) : null;
    this.block2 = this.addModule('block_2', new ResnetBlock(channels, channels, s));
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.block1.apply(x);
      if (this.attn1) h = this.attn1.apply(h);
      return this.block2.apply(h);
    });
  }
}

/**
 * VQGAN's encoder (taming / IBQ `diffusionmodules/model.py`): conv_in, per level `numResBlocks`
 * ResNet blocks (+ attention) and a stride-2 downsample except at the last level, the middle,
 * GroupNorm + SiLU, conv_out to `zChannels`. Downsampling factor `2^(levels − 1)`.
 */
export class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly down = this.addModule('down', new ModuleList<Level<Downsample>>());
  readonly mid: Mid;
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(c: ConvTrunkConfig, s: LayerSettings) {
    super();
    const conv = (i: number, o: number) => new Conv2d({ inChannels: i, outChannels: o, kernelSize: 3, seeds: s.seeds, impl: s.conv });
    this.convIn = this.addModule('conv_in', conv(c.imageChannels, c.ch));
    let blockIn = c.ch;
    c.chMult.forEach((mult, level) => {
      const lv = this.down.push(new Level<Downsample>());
      const blockOut = c.ch * mult;
      for (let i = 0; i < c.numResBlocks; i++) {
        lv.block.push(new ResnetBlock(blockIn, blockOut, s));
        blockIn = blockOut;
        if (c.attnLevels.includes(level)) lv.attn.push(new AttnBlock(blockIn, s));
      }
      if (level !== c.chMult.length - 1) lv.setSample('downsample', new Downsample(blockIn, s.seeds, s.conv));
    });
    this.mid = this.addModule('mid', new Mid(blockIn, c.midAttention, s));
    this.normOut = this.addModule('norm_out', new GroupNorm(blockIn, s.normGroups, s.normEps));
    this.convOut = this.addModule('conv_out', conv(blockIn, c.zChannels));
  }

  /** `[B, H, W, 3]` → `[B, H/f, W/f, zChannels]`. */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.convIn.apply(x);
      for (const lv of this.down) {
        lv.block.items.forEach((block, i) => {
          h = block.apply(h);
          if (lv.attn.length > 0) h = lv.attn.at(i).apply(h);
        });
        if (lv.sample) h = lv.sample.apply(h);
      }
      h = this.mid.apply(h);
      return this.convOut.apply(this.normOut.apply(h, 'silu'));
    });
  }
}
