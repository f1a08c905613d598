import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import type { LMKVCache } from './kv_cache';
import { Linear } from './linear';
import { RotaryEmbedding } from './rotary';

export interface AttentionOptions {
  hiddenSize: number;
  numHeads: number;
  numKVHeads: number;
  headDim: number;
  qkvBias: boolean;
  outputBias: boolean;
  std: number;
  seed?: number;
}

/** Inputs shared by every layer of one forward. */
export interface AttentionContext {
  cos: tf.Tensor4D; // [B|1, 1, T, D]
  sin: tf.Tensor4D;
  /** Additive mask `[B|1, 1, T, S]`: 0 where attended, a large negative number elsewhere. */
  bias: tf.Tensor4D;
  cache?: LMKVCache;
}

/**
 * Multi-head self-attention with grouped-query heads (HF `LlamaAttention` / `Qwen2Attention`):
 * `numKVHeads` key/value heads each serve `numHeads / numKVHeads` query heads (HF `repeat_kv`).
 */
export class Attention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;

  constructor(readonly options: AttentionOptions) {
    super();
    const { hiddenSize: c, numHeads: h, numKVHeads: kv, headDim: d, qkvBias, outputBias, std } = options;
    const s = options.seed;
    this.q_proj = this.addModule('q_proj', new Linear({ inFeatures: c, outFeatures: h * d, bias: qkvBias, std, seed: s }));
    this.k_proj = this.addModule(
      'k_proj',
      new Linear({ inFeatures: c, outFeatures: kv * d, bias: qkvBias, std, seed: s === undefined ? s : s + 1 }),
    );
    this.v_proj = this.addModule(
      'v_proj',
      new Linear({ inFeatures: c, outFeatures: kv * d, bias: qkvBias, std, seed: s === undefined ? s : s + 2 }),
    );
    this.o_proj = this.addModule(
      'o_proj',
      new Linear({ inFeatures: h * d, outFeatures: c, bias: outputBias, std, seed: s === undefined ? s : s + 3 }),
    );
  }

  /** `x` `[B, T, C]` → `[B, T, C]`. */
  apply(x: tf.Tensor3D, layer: number, ctx: AttentionContext): tf.Tensor3D {
    const { numHeads: h, numKVHeads: kvh, headDim: d } = this.options;
    const [b, t, c] = x.shape;
    return tf.tidy(() => {
      const x2 = tf.reshape(x, [b * t, c]) as tf.Tensor2D; // dense layers as 2-D matMuls (fast path on wasm)
      const heads = (y: tf.Tensor2D, n: number) => tf.transpose(tf.reshape(y, [b, t, n, d]), [0, 2, 1, 3]) as tf.Tensor4D;
      const q = RotaryEmbedding.apply(heads(this.q_proj.apply(x2), h), ctx.cos, ctx.sin); // [B, H, T, D]
      let k = RotaryEmbedding.apply(heads(this.k_proj.apply(x2), kvh), ctx.cos, ctx.sin); // [B, KV, T, D]
      let v = heads(this.v_proj.apply(x2), kvh);
      if (ctx.cache) ({ k, v } = ctx.cache.update(layer, k, v)); // [B, KV, S, D]
      const s = k.shape[2];
      const groups = h / kvh;
      if (groups > 1) {
        // repeat_kv without a rank-5 tensor: kv head j is copied to query heads j*G .. j*G+G-1.
        // concat, not tile: wasm's Tile kernel is two orders of magnitude slower than a copy.
        const repeat = (z: tf.Tensor4D) => {
          const z3 = tf.reshape(z, [b * kvh, 1, s * d]);
          return tf.reshape(tf.concat(new Array<tf.Tensor>(groups).fill(z3), 1), [b, h, s, d]) as tf.Tensor4D;
        };
        k = repeat(k);
        v = repeat(v);
      }
      // Kᵀ as matMul's transposeB flag, not a Transpose kernel: @ettjs/backend's wasm BatchMatMul takes
      // it as a GEMM flag (or, without the native kernels, transposes there), as the other backends do.
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(d)), ctx.bias); // [B, H, T, S]
      const out = tf.matMul(tf.softmax(scores), v); // [B, H, T, D]
      const merged = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [b * t, h * d]) as tf.Tensor2D;
      return tf.reshape(this.o_proj.apply(merged), [b, t, c]) as tf.Tensor3D;
    });
  }
}
