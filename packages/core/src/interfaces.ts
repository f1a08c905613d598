import type * as tf from '@tensorflow/tfjs-core';
import type { Module } from './module';

/** Quantizer terms and statistics returned with every encode. */
export interface TokenizerOutput {
  /** Straight-through quantised latents `[B, h, w, D]`; carries gradient to encoder and codebook. */
  quantized: tf.Tensor4D;
  /** Code indices `[B, h*w]`, raster order, int32. */
  indices: tf.Tensor2D;
  /** Named quantizer loss terms (e.g. `quant`, `entropy`), each a scalar. */
  losses: Record<string, tf.Scalar>;
  /** Codebook usage (fraction of codes used over the tracking window) and batch perplexity. */
  stats: { usage: number; perplexity: number };
}

/**
 * A discrete image tokenizer. Any class implementing this plugs into the ETT pipeline, the trainer
 * and the CLI unchanged. Images are NHWC float32 in [-1, 1].
 */
export interface VisionTokenizer extends Module {
  /** Number of codes K. */
  readonly codebookSize: number;
  /** Code dimension D. */
  readonly codeDim: number;
  /** Image side / latent grid side (16 in the paper). */
  readonly downsample: number;
  /** Differentiable encode: images `[B, H, W, 3]` to quantised latents, indices and losses. */
  encode(images: tf.Tensor4D): TokenizerOutput;
  /** Decode quantised latents `[B, h, w, D]` to images `[B, H, W, 3]`. */
  decode(quantized: tf.Tensor4D): tf.Tensor4D;
  /** Decode code indices `[B, h*w]` laid out on `grid = [h, w]`. */
  decodeIndices(indices: tf.Tensor2D, grid: [number, number]): tf.Tensor4D;
  /** Codebook rows for indices: `[B, N]` to `[B, N, D]`. */
  embedIndices(indices: tf.Tensor2D): tf.Tensor3D;
}

/** Maps visual tokens to the LM's hidden size (the ETT projector or the index-embedding baseline). */
export interface VisualAdapter extends Module {
  /** Output width (the LM hidden size C). */
  readonly outputDim: number;
  /** `quantized` is `[B, N, D]` codebook embeddings, `indices` `[B, N]`; returns `[B, N, C]`. */
  apply(input: { quantized: tf.Tensor3D; indices: tf.Tensor2D }): tf.Tensor3D;
}

/** Per-layer key/value cache for incremental decoding. */
export interface KVCache {
  /** Number of positions already cached. */
  readonly length: number;
  /** Frees every cached tensor. */
  dispose(): void;
}

/** A decoder-only language model that accepts input embeddings. */
export interface CausalLM extends Module {
  readonly hiddenSize: number;
  readonly vocabSize: number;
  /** Token embeddings `[B, T]` to `[B, T, C]`. */
  embed(ids: tf.Tensor2D): tf.Tensor3D;
  /** Forward from embeddings; with a cache, appends to it and attends over cached positions. */
  forward(input: { inputsEmbeds: tf.Tensor3D; cache?: KVCache; attentionMask?: tf.Tensor2D }): {
    logits: tf.Tensor3D;
    hidden: tf.Tensor3D;
  };
}

/** Text tokenizer: the byte-level default or an HF `tokenizer.json`. */
export interface TextTokenizer {
  readonly vocabSize: number;
  /** Ids of special tokens by name (`bos`, `eos`, `pad`, `boi`, `eoi`, ...). */
  readonly specialTokens: Readonly<Record<string, number>>;
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}
