import { Module, ModuleList } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { type ConvTrunkConfig, Level, Mid } from './encoder';
import { AttnBlock } from './layers/attention';
import { Conv2d } from './layers/conv';
import { GroupNorm } from './layers/norm';
import { type LayerSettings, ResnetBlock } from './layers/resnet-block';
import { Upsample } from './layers/sampling';

/**
 * VQGAN's decoder, the encoder mirrored: conv_in from `zChannels`, the middle, per level (deepest
 * first) `numResBlocks + 1` ResNet blocks (+ attention) and a nearest-×2 + conv upsample except at
 * level 0, GroupNorm + SiLU, conv_out to the image channels. `up.{level}` is indexed as in taming
 * (level 0 = full resolution), though it runs deepest first.
 */
export class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly mid: Mid;
  readonly up = this.addModule('up', new ModuleList<Level<Upsample>>());
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(c: ConvTrunkConfig, s: LayerSettings) {
    super();
    const conv = (i: number, o: number) => new Conv2d({ inChannels: i, outChannels: o, kernelSize: 3, seeds: s.seeds, impl: s.conv });
    const levels = c.chMult.length;
    let blockIn = c.ch * c.chMult[levels - 1];
    this.convIn = this.addModule('conv_in', conv(c.zChannels, blockIn));
    this.mid = this.addModule('mid', new Mid(blockIn, c.midAttention, s));
    // Built deepest first (so seeds follow the data flow), registered by level index.
    const built: Level<Upsample>[] = new Array(levels);
    for (let level = levels - 1; level >= 0; level--) {
      const lv = new Level<Upsample>();
      const blockOut = c.ch * c.chMult[level];
      for (let i = 0; i < c.numResBlocks + 1; i++) {
        lv.block.push(new ResnetBlock(blockIn, blockOut, s));
        blockIn = blockOut;
        if (c.attnLevels.includes(level)) lv.attn.push(new AttnBlock(blockIn, s));
      }
      if (level !== 0) lv.setSample('upsample', new Upsample(blockIn, s.seeds, s.conv));
      built[level] = lv;
    }
    for (const lv of built) this.up.push(lv);
    this.normOut = this.addModule('norm_out', new GroupNorm(blockIn, s.normGroups, s.normEps));
    this.convOut = this.addModule('conv_out', conv(blockIn, c.imageChannels));
  }

  /** `[B, h, w, zChannels]` → `[B, h·f, w·f, 3]`. */
  apply(z: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.mid.apply(this.convIn.apply(z));
      for (let level = this.up.length - 1; level >= 0; level--) {
        const lv = this.up.at(level);
        lv.block.items.forEach((block, i) => {
          h = block.apply(h);
          if (lv.attn.length > 0) h = lv.attn.at(i).apply(h);
        });
        if (lv.sample) h = lv.sample.apply(h);
      }
      return this.convOut.apply(this.normOut.apply(h, 'silu'));
    });
  }
}
