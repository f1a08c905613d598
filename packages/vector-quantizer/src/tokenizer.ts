import {
  checkOnHost,
  loadSafetensorsFile,
  Module,
  safetensorsToTensors,
  saveSafetensorsFile,
  type TokenizerOutput,
  type VisionTokenizer,
} from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import type { QuantizeCallOptions, QuantizerUpdateReport } from './codebook-quantizer';
import { Decoder } from './decoder';
import { type ConvTrunkConfig, Encoder } from './encoder';
import { VQInputError } from './errors';
import { IBQQuantizer, type IBQOptions } from './ibq';
import { type ConvImpl, Conv2d } from './layers/conv';
import { SeedSequence } from './layers/init';
import { VectorQuantizer, type VQOptions } from './vq';

/** Which quantizer sits between encoder and decoder, with its options (K and D come from the tokenizer config). */
export type TokenizerQuantizer =
  | { kind: 'ibq'; options?: Partial<Omit<IBQOptions, 'codebookSize' | 'codeDim'>> }
  | { kind: 'vq'; options?: Partial<Omit<VQOptions, 'codebookSize' | 'codeDim'>> };

/** What `encode` does with pixel values outside [-1, 1] (beyond a 1e-3 tolerance). */
export type RangeCheck = 'error' | 'warn' | 'off';

/** VQTokenizer configuration. Defaults (`DEFAULT_VQ_TOKENIZER_CONFIG`) are the paper's shape. */
export interface VQTokenizerConfig extends ConvTrunkConfig {
  /** Image channels. Defaults to 3. */
  imageChannels: number;
  /** Base channels. Defaults to 128 (IBQ yaml). */
  ch: number;
  /** Channel multiplier per level; `levels − 1` downsamples. Defaults to [1, 1, 2, 2, 4] (×16; IBQ yaml, ETT §3.1). */
  chMult: number[];
  /** ResNet blocks per level (decoder: +1). Defaults to 4 (IBQ yaml). */
  numResBlocks: number;
  /** Levels with self-attention after each block. Defaults to [4] (IBQ's `attn_resolutions: [16]` at 256 px). */
  attnLevels: number[];
  /** Self-attention in the middle block. Defaults to true (VQGAN). */
  midAttention: boolean;
  /** Encoder output / decoder input channels. Defaults to 256 (IBQ yaml). */
  zChannels: number;
  /** Code dimension D (quant_conv output). Defaults to 256 (ETT §3.1). */
  codeDim: number;
  /** Codebook size K. Defaults to 131 072 (ETT §3.1). */
  codebookSize: number;
  /** Quantizer. Defaults to `{ kind: 'ibq' }` with IBQ's defaults (ETT builds on IBQ). */
  quantizer: TokenizerQuantizer;
  /** GroupNorm groups. Defaults to 32 (VQGAN). */
  normGroups: number;
  /** GroupNorm epsilon. Defaults to 1e-6 (VQGAN). */
  normEps: number;
  /** Convolution implementation (see `ConvImpl`). Defaults to `native`. */
  conv: ConvImpl;
  /** Pixel range check in `encode`. Defaults to `error`. */
  rangeCheck: RangeCheck;
  /** Initialisation seed. Defaults to 0. */
  seed: number;
}

/** The paper's tokenizer: IBQ, ch 128, mult [1,1,2,2,4], 4 blocks, D 256, K 131 072, ×16. */
export const DEFAULT_VQ_TOKENIZER_CONFIG: VQTokenizerConfig = {
  imageChannels: 3,
  ch: 128,
  chMult: [1, 1, 2, 2, 4],
  numResBlocks: 4,
  attnLevels: [4],
  midAttention: true,
  zChannels: 256,
  codeDim: 256,
  codebookSize: 131_072,
  quantizer: { kind: 'ibq' },
  normGroups: 32,
  normEps: 1e-6,
  conv: 'native',
  rangeCheck: 'error',
  seed: 0,
};

/** Alias for the paper's shape (`DEFAULT_VQ_TOKENIZER_CONFIG`). */
export const VQ_TOKENIZER_PAPER: VQTokenizerConfig = DEFAULT_VQ_TOKENIZER_CONFIG;

/**
 * A toy tokenizer that trains on a CPU: 32×32 images, ×4, ch 16, D 16, K 256, no attention.
 * IBQ with l2-normalised codes, cosine logits at τ 0.1 and the entropy penalty, plus dead-code
 * restart: the plain dot-product form collapsed to 1–4 codes at this scale (MEASUREMENTS).
 */
export const VQ_TOKENIZER_TINY: VQTokenizerConfig = {
  ...DEFAULT_VQ_TOKENIZER_CONFIG,
  ch: 16,
  chMult: [1, 2, 2],
  numResBlocks: 1,
  attnLevels: [],
  midAttention: false,
  zChannels: 16,
  codeDim: 16,
  codebookSize: 256,
  quantizer: {
    kind: 'ibq',
    options: {
      l2Normalize: true,
      temperature: 0.1,
      entropy: { kind: 'on', temperature: 0.1, weight: 0.05 },
      deadCodeRestart: { kind: 'batch-samples', afterSteps: 20 },
    },
  },
  normGroups: 8,
};

/** The `model_type` written to config.json. */
export const VQ_TOKENIZER_MODEL_TYPE = 'ettjs_vq_tokenizer';

/** `TokenizerOutput` plus the weight of each loss term. */
export interface VQTokenizerOutput extends TokenizerOutput {
  /** Weight per entry of `losses` (see `weightedQuantizerLoss`). */
  lossWeights: Record<string, number>;
}

/** Checks a merged config; throws a RangeError naming the field. */
export function validateTokenizerConfig(c: VQTokenizerConfig): void {
  const int = (name: string, v: unknown, min = 1) => {
    if (!Number.isInteger(v) || (v as number) < min)
      throw new RangeError(`VQTokenizer: ${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  };
  int('imageChannels', c.imageChannels);
  int('ch', c.ch);
  int('numResBlocks', c.numResBlocks);
  int('zChannels', c.zChannels);
  int('codeDim', c.codeDim);
  int('codebookSize', c.codebookSize, 2);
  if (!Array.isArray(c.chMult) || c.chMult.length === 0) throw new RangeError('VQTokenizer: chMult must be a non-empty array');
  for (const [i, m] of c.chMult.entries()) int(`chMult[${i}]`, m);
  for (const l of c.attnLevels)
    if (!Number.isInteger(l) || l < 0 || l >= c.chMult.length)
      throw new RangeError(`VQTokenizer: attnLevels entry ${l} is not a level (0..${c.chMult.length - 1})`);
  for (const ch of [c.ch, ...c.chMult.map((m) => c.ch * m)]) {
    if (ch % c.normGroups !== 0) throw new RangeError(`VQTokenizer: normGroups ${c.normGroups} does not divide ${ch} channels`);
  }
  if (c.quantizer?.kind !== 'ibq' && c.quantizer?.kind !== 'vq')
    throw new RangeError(`VQTokenizer: quantizer.kind must be 'ibq' or 'vq', got ${JSON.stringify(c.quantizer)}`);
  if (!['native', 'im2col'].includes(c.conv)) throw new RangeError(`VQTokenizer: conv must be 'native' or 'im2col', got ${c.conv}`);
  if (!['error', 'warn', 'off'].includes(c.rangeCheck))
    throw new RangeError(`VQTokenizer: rangeCheck must be 'error', 'warn' or 'off', got ${c.rangeCheck}`);
}

/**
 * The reference ETT vision tokenizer: a VQGAN-style conv encoder, a 1×1 `quant_conv` to D, a
 * quantizer (IBQ by default), a 1×1 `post_quant_conv` and the decoder. Implements
 * `VisionTokenizer`; images are NHWC float32 in [-1, 1].
 *
 * Training protocol: `encode` (inside the loss function) records usage and, when needed, the batch;
 * call `update()` after the optimizer step to apply EMA and dead-code restart. `eval()` (or
 * `encode(x, { training: false })`) encodes without mutating anything.
 */
export class VQTokenizer extends Module implements VisionTokenizer {
  readonly config: Readonly<VQTokenizerConfig>;
  readonly encoder: Encoder;
  readonly quantConv: Conv2d;
  readonly quantize: IBQQuantizer | VectorQuantizer;
  readonly postQuantConv: Conv2d;
  readonly decoder: Decoder;
  #warnedRange = false;

  constructor(config: Partial<VQTokenizerConfig> = {}) {
    super();
    const c: VQTokenizerConfig = { ...DEFAULT_VQ_TOKENIZER_CONFIG, ...config };
    validateTokenizerConfig(c);
    this.config = Object.freeze(structuredClone(c));
    const s = { normGroups: c.normGroups, normEps: c.normEps, conv: c.conv, seeds: new SeedSequence(c.seed) };
    this.encoder = this.addModule('encoder', new Encoder(c, s));
    this.quantConv = this.addModule(
      'quant_conv',
      new Conv2d({ inChannels: c.zChannels, outChannels: c.codeDim, kernelSize: 1, seeds: s.seeds }),
    );
    const qBase = { codebookSize: c.codebookSize, codeDim: c.codeDim, seed: s.seeds.next() };
    this.quantize = this.addModule(
      'quantize',
      c.quantizer.kind === 'ibq'
        ? new IBQQuantizer({ ...qBase, ...c.quantizer.options })
        : new VectorQuantizer({ ...qBase, ...c.quantizer.options }),
    );
    this.postQuantConv = this.addModule(
      'post_quant_conv',
      new Conv2d({ inChannels: c.codeDim, outChannels: c.zChannels, kernelSize: 1, seeds: s.seeds }),
    );
    this.decoder = this.addModule('decoder', new Decoder(c, s));
  }

  get codebookSize(): number {
    return this.config.codebookSize;
  }
  get codeDim(): number {
    return this.config.codeDim;
  }
  get downsample(): number {
    return 2 ** (this.config.chMult.length - 1);
  }

  /** Training mode (the default) for the quantizer's bookkeeping. */
  train(): this {
    this.quantize.train();
    return this;
  }
  /** Evaluation mode: encodes mutate nothing. */
  eval(): this {
    this.quantize.eval();
    return this;
  }

  /** Applies EMA / dead-code restart from the recorded training batches; call after the optimizer step. */
  update(): QuantizerUpdateReport {
    return this.quantize.update();
  }

  /**
   * Reads the training batches the quantizer kept on the device where reads are asynchronous
   * (WebGPU); call it before `update()` there. A no-op on CPU and WASM.
   */
  settle(): Promise<void> {
    return this.quantize.settle();
  }

  #checkImages(images: tf.Tensor4D): void {
    const c = this.config;
    const f = this.downsample;
    if (!(images instanceof tf.Tensor) || images.rank !== 4) {
      throw new VQInputError(
        `VQTokenizer.encode: expected images [B, H, W, ${c.imageChannels}] (NHWC), got ${images instanceof tf.Tensor ? `rank ${images.rank} [${images.shape}]` : typeof images}`,
      );
    }
    const [, h, w, ch] = images.shape;
    if (ch !== c.imageChannels) {
      const hint = h === c.imageChannels ? ' It looks like NCHW: transpose with tf.transpose(x, [0, 2, 3, 1]).' : '';
      throw new VQInputError(`VQTokenizer.encode: expected ${c.imageChannels} channels last (NHWC), got shape [${images.shape}].${hint}`);
    }
    if (h % f !== 0 || w % f !== 0) {
      throw new VQInputError(
        `VQTokenizer.encode: image side ${h}×${w} is not divisible by the downsample factor ${f}; resize or crop to a multiple of ${f}`,
      );
    }
    if (images.dtype !== 'float32') throw new VQInputError(`VQTokenizer.encode: images must be float32 in [-1, 1], got ${images.dtype}`);
    // One small host read per encode: NaN count and range. Synchronous on CPU/WASM; on WebGPU it
    // runs at the next settleHostChecks() (the Trainer's, before the optimizer step).
    const summary = tf.tidy(() => tf.stack([tf.min(images), tf.max(images), tf.sum(tf.cast(tf.isNaN(images), 'float32'))]));
    checkOnHost(summary, ([lo, hi, nan]) => {
      if (nan > 0) throw new VQInputError(`VQTokenizer.encode: images contain ${nan} NaN value(s)`);
      if (c.rangeCheck !== 'off' && (lo < -1.001 || hi > 1.001)) {
        const msg = `VQTokenizer.encode: pixel values span [${lo}, ${hi}], expected [-1, 1] (x / 127.5 − 1 for 8-bit images)`;
        if (c.rangeCheck === 'error') throw new VQInputError(`${msg}; set rangeCheck: 'warn' or 'off' to allow it`);
        if (!this.#warnedRange) {
          this.#warnedRange = true;
          console.warn(`${msg} (warned once)`);
        }
      }
    });
  }

  /**
   * Images `[B, H, W, 3]` in [-1, 1] → quantised latents `[B, H/f, W/f, D]` (straight-through),
   * indices `[B, (H/f)·(W/f)]` int32 in raster order, unweighted loss terms with their weights, stats.
   */
  encode(images: tf.Tensor4D, call: QuantizeCallOptions = {}): VQTokenizerOutput {
    this.#checkImages(images);
    const [b] = images.shape;
    const z = tf.tidy(() => this.quantConv.apply(this.encoder.apply(images)));
    const r = this.quantize.quantize(z, call);
    z.dispose();
    const indices = tf.reshape(r.indices, [b, -1]) as tf.Tensor2D;
    r.indices.dispose();
    return { quantized: r.quantized as tf.Tensor4D, indices, losses: r.losses, lossWeights: r.lossWeights, stats: r.stats };
  }

  /** Quantised latents `[B, h, w, D]` → images `[B, h·f, w·f, 3]` (unbounded; clip for display). */
  decode(quantized: tf.Tensor4D): tf.Tensor4D {
    if (quantized.rank !== 4 || quantized.shape[3] !== this.codeDim) {
      throw new VQInputError(`VQTokenizer.decode: expected latents [B, h, w, ${this.codeDim}], got [${quantized.shape}]`);
    }
    return tf.tidy(() => this.decoder.apply(this.postQuantConv.apply(quantized)));
  }

  /** Indices `[B, h·w]` on `grid = [h, w]` → images. */
  decodeIndices(indices: tf.Tensor2D, grid: [number, number]): tf.Tensor4D {
    const [h, w] = grid;
    if (indices.rank !== 2 || indices.shape[1] !== h * w) {
      throw new VQInputError(`VQTokenizer.decodeIndices: expected indices [B, ${h * w}] for grid ${h}×${w}, got [${indices.shape}]`);
    }
    return tf.tidy(() => this.decode(tf.reshape(this.embedIndices(indices), [indices.shape[0], h, w, this.codeDim])));
  }

  /** Codebook rows for indices `[B, N]` → `[B, N, D]` (l2-normalised when the quantizer normalises). */
  embedIndices(indices: tf.Tensor2D): tf.Tensor3D {
    if (indices.rank !== 2) throw new VQInputError(`VQTokenizer.embedIndices: expected indices [B, N], got [${indices.shape}]`);
    if (indices.dtype !== 'int32') throw new VQInputError(`VQTokenizer.embedIndices: indices must be int32, got ${indices.dtype}`);
    return this.quantize.embed(indices) as tf.Tensor3D;
  }

  /** Encodes and decodes (training-mode bookkeeping unless `training: false`). */
  reconstruct(images: tf.Tensor4D, call: QuantizeCallOptions = {}): { reconstruction: tf.Tensor4D } & VQTokenizerOutput {
    const out = this.encode(images, call);
    return { ...out, reconstruction: this.decode(out.quantized) };
  }

  /** Writes `config.json` (with `model_type`) and `model.safetensors` (every parameter and buffer by dotted name) to `dir`. */
  async savePretrained(dir: string): Promise<void> {
    const { mkdir, writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'config.json'), `${JSON.stringify({ model_type: VQ_TOKENIZER_MODEL_TYPE, ...this.config }, null, 2)}\n`);
    await saveSafetensorsFile(join(dir, 'model.safetensors'), this.stateDict(), { format: 'ettjs', model_type: VQ_TOKENIZER_MODEL_TYPE });
  }

  /**
   * Loads a tokenizer saved by `savePretrained`. Throws a `VQInputError` for a missing or foreign
   * config, and core's `StateDictError` (listing every missing, unexpected or mis-shaped tensor)
   * when the weights do not match the config.
   */
  static async fromPretrained(dir: string): Promise<VQTokenizer> {
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    let raw: string;
    try {
      raw = await readFile(join(dir, 'config.json'), 'utf8');
    } catch (e) {
      throw new VQInputError(
        `VQTokenizer.fromPretrained: cannot read ${join(dir, 'config.json')} (${(e as Error).message}); is "${dir}" a directory written by savePretrained?`,
      );
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(raw);
    } catch (e) {
      throw new VQInputError(`VQTokenizer.fromPretrained: ${join(dir, 'config.json')} is not valid JSON (${(e as Error).message})`);
    }
    const { model_type: modelType, ...config } = parsed;
    if (modelType !== VQ_TOKENIZER_MODEL_TYPE) {
      throw new VQInputError(
        `VQTokenizer.fromPretrained: config.json has model_type ${JSON.stringify(modelType)}, expected "${VQ_TOKENIZER_MODEL_TYPE}"`,
      );
    }
    const unknown = Object.keys(config).filter((k) => !(k in DEFAULT_VQ_TOKENIZER_CONFIG));
    if (unknown.length > 0) throw new VQInputError(`VQTokenizer.fromPretrained: unknown config field(s) ${unknown.join(', ')}`);
    const file = await loadSafetensorsFile(join(dir, 'model.safetensors'));
    const model = new VQTokenizer(config as Partial<VQTokenizerConfig>);
    const tensors = safetensorsToTensors(file);
    try {
      model.loadStateDict(tensors);
    } catch (e) {
      model.dispose();
      throw e;
    } finally {
      tf.dispose(Object.values(tensors));
    }
    return model;
  }
}
