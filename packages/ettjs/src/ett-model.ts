import { AutoregressiveLM, generate, generateVisualCodes, type SamplingOptions } from '@ettjs/autoregressive-lm';
import {
  type CausalLM,
  Module,
  settleHostChecks,
  type TextTokenizer,
  type TokenizerOutput,
  type VisionTokenizer,
  type VisualAdapter,
} from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import {
  buildCaptionSequences,
  buildGenerationSequences,
  type CaptionSequences,
  type GenerationSequences,
  type SpecialIds,
} from './sequence';

/** Thrown when the parts of an ETT model do not fit together or an input is malformed. */
export class ETTModelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ETTModelError';
  }
}

export interface ETTModelParts {
  /** Any `VisionTokenizer`: `VQTokenizer` or your own. */
  tokenizer: VisionTokenizer;
  /** `CodebookProjector` (ETT) or `IndexEmbedding` (frozen-index baseline), output width = LM hidden size. */
  adapter: VisualAdapter;
  /** Any `CausalLM`; captioning is fastest with `AutoregressiveLM` (KV cache), generation requires it (visual head). */
  lm: CausalLM;
  /** Text tokenizer with the special tokens `bos`, `eos`, `pad`, `boi`, `eoi`. */
  text: TextTokenizer;
  /** Image side the model is trained at (the tokenizer's input size). */
  imageSize: number;
  /** The GAN discriminator of `L_vq`, if the run uses one; saved with the model. */
  discriminator?: Module;
}

/** Options of `caption`. Sampling defaults to greedy. */
export interface CaptionOptions extends SamplingOptions {
  /** Defaults to 48 tokens. */
  maxNewTokens?: number;
  seed?: number;
  /**
   * Token ids that end a caption besides the text tokenizer's `[EOS]` (not included in it), e.g. a
   * chat model's `<|im_end|>`. Defaults to none.
   */
  stopTokens?: readonly number[];
}

/**
 * Tokenizer + visual adapter + LM, wired as ETT (DESIGN.md "The ETT sequence"):
 * `[BOS] <boi> adapter(z_q)_1 … adapter(z_q)_N <eoi> caption [EOS]`. Gradients of the caption loss
 * flow through the adapter into the tokenizer's codebook and encoder whenever the tokenizer is not
 * frozen, which is the whole point of ETT.
 */
export class ETTModel extends Module {
  readonly tokenizer: VisionTokenizer;
  readonly adapter: VisualAdapter;
  readonly lm: CausalLM;
  readonly text: TextTokenizer;
  readonly imageSize: number;
  readonly discriminator?: Module;
  readonly ids: SpecialIds;

  constructor(parts: ETTModelParts) {
    super();
    const { tokenizer, adapter, lm, text, imageSize } = parts;
    if (adapter.outputDim !== lm.hiddenSize) {
      throw new ETTModelError(
        `ETTModel: the adapter outputs ${adapter.outputDim} features but the LM hidden size is ${lm.hiddenSize}; build the adapter with outputDim = lm.hiddenSize`,
      );
    }
    if (!Number.isInteger(imageSize) || imageSize % tokenizer.downsample !== 0) {
      throw new ETTModelError(
        `ETTModel: imageSize ${imageSize} must be a multiple of the tokenizer's downsample factor ${tokenizer.downsample}`,
      );
    }
    const s = text.specialTokens;
    const missing = ['bos', 'eos', 'pad', 'boi', 'eoi'].filter((k) => !Number.isInteger(s[k]));
    if (missing.length > 0) {
      throw new ETTModelError(
        `ETTModel: the text tokenizer lacks special token(s) ${missing.join(', ')}; add them (e.g. HFTokenizer.addSpecialTokens) and resize the LM embeddings`,
      );
    }
    if (text.vocabSize > lm.vocabSize) {
      throw new ETTModelError(
        `ETTModel: the text tokenizer has ${text.vocabSize} ids but the LM only ${lm.vocabSize} embeddings; call lm.resizeTokenEmbeddings(${text.vocabSize})`,
      );
    }
    this.ids = { bos: s.bos, eos: s.eos, pad: s.pad, boi: s.boi, eoi: s.eoi };
    this.tokenizer = this.addModule('tokenizer', tokenizer);
    this.adapter = this.addModule('adapter', adapter);
    this.lm = this.addModule('lm', lm);
    if (parts.discriminator) this.discriminator = this.addModule('discriminator', parts.discriminator);
    this.text = text;
    this.imageSize = imageSize;
  }

  /** Visual tokens per image, N = (imageSize / downsample)². */
  get numVisual(): number {
    const side = this.imageSize / this.tokenizer.downsample;
    return side * side;
  }

  /** Context length of the LM, when it declares one. */
  get maxLength(): number {
    return this.lm instanceof AutoregressiveLM ? this.lm.config.maxPositionEmbeddings : Number.MAX_SAFE_INTEGER;
  }

  #checkImages(images: tf.Tensor4D, where: string): void {
    if (
      !(images instanceof tf.Tensor) ||
      images.rank !== 4 ||
      images.shape[1] !== this.imageSize ||
      images.shape[2] !== this.imageSize ||
      images.shape[3] !== 3
    ) {
      throw new ETTModelError(
        `${where}: expected images [B, ${this.imageSize}, ${this.imageSize}, 3] in [-1, 1], got ${images instanceof tf.Tensor ? `[${images.shape}]` : typeof images}`,
      );
    }
  }

  /** Tokenizes images and maps their codebook embeddings to LM inputs `[B, N, C]`. */
  encodeImages(images: tf.Tensor4D): { visual: tf.Tensor3D; tokens: TokenizerOutput } {
    this.#checkImages(images, 'ETTModel.encodeImages');
    const tokens = this.tokenizer.encode(images);
    const [b, h, w, d] = tokens.quantized.shape;
    const visual = tf.tidy(() =>
      this.adapter.apply({ quantized: tf.reshape(tokens.quantized, [b, h * w, d]) as tf.Tensor3D, indices: tokens.indices }),
    );
    return { visual, tokens };
  }

  #embedIds(ids: Int32Array, rows: number): tf.Tensor3D {
    return tf.tidy(() => this.lm.embed(tf.tensor2d(ids, [rows, ids.length / rows], 'int32')));
  }

  /**
   * The understanding forward pass (stages 1–3 chat): logits over the whole sequence, the
   * already-shifted caption targets (`IGNORE_INDEX` off-caption) and the tokenizer output whose
   * quantizer terms feed `L_vq`. Call inside the gradient tape; dispose the tensors you keep.
   */
  captionForward(
    images: tf.Tensor4D,
    captions: readonly (readonly number[])[],
  ): { logits: tf.Tensor3D; targets: tf.Tensor2D; tokens: TokenizerOutput; layout: CaptionSequences } {
    if (captions.length !== images.shape[0])
      throw new ETTModelError(`ETTModel.captionForward: ${images.shape[0]} images but ${captions.length} captions`);
    const layout = buildCaptionSequences(captions, this.ids, this.numVisual, this.maxLength);
    const { visual, tokens } = this.encodeImages(images);
    const logits = tf.tidy(() => {
      const B = layout.batch;
      const embeds = tf.concat([this.#embedIds(layout.prefixIds, B), visual, this.#embedIds(layout.suffixIds, B)], 1) as tf.Tensor3D;
      const mask = tf.tensor2d(layout.attentionMask, [B, layout.length], 'int32');
      return this.lm.forward({ inputsEmbeds: embeds, attentionMask: mask }).logits;
    });
    visual.dispose();
    const targets = tf.tensor2d(layout.targets, [layout.batch, layout.length], 'int32');
    return { logits, targets, tokens, layout };
  }

  /** Captions images (understanding). Greedy unless sampling options are given. */
  async caption(images: tf.Tensor4D, options: CaptionOptions = {}): Promise<string[]> {
    this.#checkImages(images, 'ETTModel.caption');
    const extra = options.stopTokens ?? [];
    if (!Array.isArray(extra) || extra.some((id) => !Number.isInteger(id) || id < 0 || id >= this.lm.vocabSize)) {
      throw new ETTModelError(
        `ETTModel.caption: stopTokens must be token ids in [0, ${this.lm.vocabSize}), got ${JSON.stringify(options.stopTokens)}`,
      );
    }
    const stops = [this.ids.eos, ...extra];
    const B = images.shape[0];
    const prefix = tf.tidy(() => {
      const { visual, tokens } = this.encodeImages(images);
      const ids = this.ids;
      const pre = this.#embedIds(
        Int32Array.from({ length: 2 * B }, (_, i) => (i % 2 === 0 ? ids.bos : ids.boi)),
        B,
      );
      const eoi = this.#embedIds(new Int32Array(B).fill(ids.eoi), B);
      disposeTokens(tokens);
      return tf.concat([pre, visual, eoi], 1) as tf.Tensor3D;
    });
    try {
      const maxNewTokens = options.maxNewTokens ?? 48;
      let rows: number[][];
      if (this.lm instanceof AutoregressiveLM) {
        // An LM's vocabulary is often padded past its tokenizer's: never sample ids the tokenizer cannot decode.
        const allowedIds = this.text.vocabSize < this.lm.vocabSize ? Array.from({ length: this.text.vocabSize }, (_, i) => i) : undefined;
        rows = (await generate(this.lm, { allowedIds, ...options, inputsEmbeds: prefix, maxNewTokens, stopTokens: stops })).tokens;
      } else {
        rows = await this.#greedyWithoutCache(prefix, maxNewTokens, new Set(stops));
      }
      return rows.map((r) => this.text.decode(r));
    } finally {
      prefix.dispose();
    }
  }

  /** Greedy decoding for a user's `CausalLM` without a cache: recomputes the sequence each token. */
  async #greedyWithoutCache(prefix: tf.Tensor3D, maxNewTokens: number, stops: ReadonlySet<number>): Promise<number[][]> {
    const B = prefix.shape[0];
    const rows: number[][] = Array.from({ length: B }, () => []);
    const done = new Array(B).fill(false);
    let seq = tf.clone(prefix);
    for (let step = 0; step < maxNewTokens && done.some((d) => !d); step++) {
      const next = tf.tidy(() => {
        const { logits } = this.lm.forward({ inputsEmbeds: seq });
        const [b, t, v] = logits.shape;
        return tf.argMax(tf.reshape(tf.slice(logits, [0, t - 1, 0], [b, 1, v]), [b, v]), 1);
      });
      const ids = Array.from(await next.data());
      await settleHostChecks(); // input checks queued where reads are asynchronous (WebGPU)
      ids.forEach((id, i) => {
        if (done[i]) return;
        if (stops.has(id)) done[i] = true;
        else rows[i].push(id);
      });
      const grown = tf.tidy(() => tf.concat([seq, this.lm.embed(tf.tensor2d(ids, [B, 1], 'int32'))], 1) as tf.Tensor3D);
      next.dispose();
      seq.dispose();
      seq = grown;
    }
    seq.dispose();
    return rows;
  }

  #requireVisualHead(where: string): AutoregressiveLM {
    if (!(this.lm instanceof AutoregressiveLM) || this.lm.visualVocabSize !== this.tokenizer.codebookSize) {
      throw new ETTModelError(
        `${where}: image generation needs an AutoregressiveLM with a visual head over the tokenizer's ${this.tokenizer.codebookSize} codes (visualVocabSize = ${this.tokenizer.codebookSize})`,
      );
    }
    return this.lm;
  }

  /** Adapter embeddings of code indices `[B, n]` → `[B, n, C]` (the generation input path). */
  embedCodes(codes: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => this.adapter.apply({ quantized: this.tokenizer.embedIndices(codes), indices: codes }));
  }

  /**
   * The generation forward pass (stage 3 gen): prompts then the image's codes, fed back through
   * the adapter as in ETT (codebook embeddings, not a new table); returns visual-code logits at
   * every position and the code targets (`IGNORE_INDEX` off-image).
   */
  generationForward(
    prompts: readonly (readonly number[])[],
    codes: readonly (readonly number[])[],
  ): { logits: tf.Tensor3D; targets: tf.Tensor2D; layout: GenerationSequences } {
    const lm = this.#requireVisualHead('ETTModel.generationForward');
    const N = this.numVisual;
    const layout = buildGenerationSequences(prompts, codes, this.ids, N, this.maxLength);
    const B = layout.batch;
    const logits = tf.tidy(() => {
      const prompt = this.#embedIds(layout.promptIds, B);
      const inputsCodes = tf.tensor2d(
        codes.flatMap((r) => r.slice(0, N - 1)),
        [B, N - 1],
        'int32',
      );
      const embeds = tf.concat([prompt, this.embedCodes(inputsCodes)], 1) as tf.Tensor3D;
      const mask = tf.tensor2d(layout.attentionMask, [B, layout.length], 'int32');
      const { hidden } = lm.forward({ inputsEmbeds: embeds, attentionMask: mask });
      return lm.visualLogits(hidden);
    });
    return { logits, targets: tf.tensor2d(layout.codeTargets, [B, layout.length], 'int32'), layout };
  }

  /** Generates images from text prompts: samples N codes with the visual head, then decodes them. */
  async generateImages(
    prompts: readonly string[],
    options: SamplingOptions & { seed?: number } = {},
  ): Promise<{ images: tf.Tensor4D; codes: number[][] }> {
    const lm = this.#requireVisualHead('ETTModel.generateImages');
    if (prompts.length === 0) throw new ETTModelError('ETTModel.generateImages: no prompts');
    const tokenized = prompts.map((p) => this.text.encode(p));
    const longest = Math.max(...tokenized.map((t) => t.length)) + 2;
    const ids = this.ids;
    const rows = tokenized.map((t) => [...new Array(longest - t.length - 2).fill(ids.pad), ids.bos, ...t, ids.boi]);
    if (tokenized.some((t) => t.length + 2 !== longest)) {
      // Left padding only matters with a mask; generateVisualCodes has none, so generate row by row.
      const parts = await Promise.all(prompts.map((p) => this.generateImages([p], options)));
      const images = tf.concat(parts.map((p) => p.images)) as tf.Tensor4D;
      for (const p of parts) p.images.dispose();
      return { images, codes: parts.flatMap((p) => p.codes) };
    }
    const prefix = this.#embedIds(Int32Array.from(rows.flat()), rows.length);
    let codes: number[][];
    try {
      codes = await generateVisualCodes(lm, {
        ...options,
        inputsEmbeds: prefix,
        numCodes: this.numVisual,
        embedCodes: (c) => this.embedCodes(c),
      });
    } finally {
      prefix.dispose();
    }
    const side = this.imageSize / this.tokenizer.downsample;
    const images = tf.tidy(() => this.tokenizer.decodeIndices(tf.tensor2d(codes, [codes.length, this.numVisual], 'int32'), [side, side]));
    return { images, codes };
  }
}

/** Disposes every tensor of a tokenizer output. */
export function disposeTokens(t: TokenizerOutput): void {
  t.quantized.dispose();
  t.indices.dispose();
  for (const l of Object.values(t.losses)) l.dispose();
}
