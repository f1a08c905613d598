import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { Attention, type AttentionContext } from './attention';
import type { LMConfig } from './config';
import { RMSNorm } from './rms_norm';
import { SwiGLUMLP } from './swiglu_mlp';

/** One pre-norm block (HF `LlamaDecoderLayer`): `x += attn(norm(x)); x += mlp(norm(x))`. */
export class DecoderLayer extends Module {
  readonly self_attn: Attention;
  readonly mlp: SwiGLUMLP;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;

  constructor(
    readonly index: number,
    config: Required<LMConfig>,
    seed?: number,
  ) {
    super();
    const c = config;
    const std = c.initializerRange;
    this.self_attn = this.addModule(
      'self_attn',
      new Attention({
        hiddenSize: c.hiddenSize,
        numHeads: c.numHeads,
        numKVHeads: c.numKVHeads,
        headDim: c.headDim,
        qkvBias: c.qkvBias,
        outputBias: c.outputBias,
        std,
        seed,
      }),
    );
    this.mlp = this.addModule(
      'mlp',
      new SwiGLUMLP(c.hiddenSize, c.intermediateSize, { bias: c.mlpBias, std, seed: seed === undefined ? seed : seed + 10 }),
    );
    this.input_layernorm = this.addModule('input_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
    this.post_attention_layernorm = this.addModule('post_attention_layernorm', new RMSNorm(c.hiddenSize, c.rmsNormEps));
  }

  /** `[B, T, C]` → `[B, T, C]`. */
  apply(x: tf.Tensor3D, ctx: AttentionContext): tf.Tensor3D {
    const [b, t, c] = x.shape;
    return tf.tidy(() => {
      const h = tf.add(x, this.self_attn.apply(this.input_layernorm.apply(x), this.index, ctx));
      const m = this.mlp.apply(tf.reshape(this.post_attention_layernorm.apply(h), [b * t, c]));
      return tf.add(h, tf.reshape(m, [b, t, c])) as tf.Tensor3D;
    });
  }
}
