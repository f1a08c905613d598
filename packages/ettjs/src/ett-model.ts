import {
  AutoregressiveLM,
  ByteTokenizer,
  generate,
  generateVisualCodes,
  HFTokenizer,
  loadTextTokenizer,
  type SamplingOptions,
  saveTextTokenizer,
} from '@ettjs/autoregressive-lm';
import {
  type CausalLM,
  Module,
  settleHostChecks,
  type TextTokenizer,
  type TokenizerOutput,
  type VisionTokenizer,
  type VisualAdapter,
} from '@ettjs/core';
import { type AdapterKind, CodebookProjector, IndexEmbedding, loadVisualAdapter } from '@ettjs/projector';
import { VQTokenizer } from '@ettjs/vector-quantizer';
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
  /** The GAN discriminator of `L_vq`, if the run uses one; in training checkpoints, not in `savePretrained`. */
  discriminator?: Module;
}

/** `model_type` of a saved ETT model's top-level `config.json`. */
export const ETT_MODEL_TYPE = 'ett';
/** Layout version of a saved ETT model; `fromPretrained` reads this version and older. */
export const ETT_FORMAT_VERSION = 1;
/** Subdirectories of a saved ETT model, one per part, each in that part's own saved form. */
export const ETT_MODEL_DIRS = { visionTokenizer: 'vision_tokenizer', adapter: 'adapter', lm: 'lm' } as const;

/** The top-level `config.json` of a directory written by `ETTModel.savePretrained`. */
export interface ETTPretrainedConfig {
  model_type: typeof ETT_MODEL_TYPE;
  format_version: number;
  /** Image side the model reads and writes. */
  image_size: number;
  /** Ids of `[BOS]`, `[EOS]`, pad, `<boi>`, `<eoi>` in the text tokenizer (checked against it on load). */
  special_tokens: SpecialIds;
  /** Which adapter `adapter/` holds: `projector` (ETT, frozen-embedding) or `index` (frozen-index). */
  adapter_kind: AdapterKind;
  /** Where the weights came from, free-form (`ett export` records the run, stage, arm and checkpoint). */
  source?: Record<string, unknown>;
}

/** Options of `savePretrained`. */
export interface SavePretrainedOptions {
  /** Written as `source` in config.json, e.g. `{ run, stage, arm }`. Defaults to none. */
  source?: Record<string, unknown>;
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

  /**
   * Writes the model to `dir` (Node) as a directory users can move around:
   * `config.json` (`ETTPretrainedConfig`: image size, special-token ids, adapter kind, model_type,
   * format version), `vision_tokenizer/` (`VQTokenizer.savePretrained`), `adapter/`
   * (`CodebookProjector` / `IndexEmbedding.savePretrained`) and `lm/` (HF `config.json` +
   * `model.safetensors` with HF tensor names, which `transformers` loads, plus the text tokenizer's
   * files). The GAN discriminator is not saved: it only serves training, and a training run
   * continues from its checkpoints. Needs a `VQTokenizer`, one of the two adapters, an
   * `AutoregressiveLM` and a `ByteTokenizer` or `HFTokenizer`.
   */
  async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    await writePretrained(this, dir, options);
  }

  /** Loads a model written by `savePretrained` (or `ett export`); errors name the file at fault and what to do. */
  static async fromPretrained(dir: string): Promise<ETTModel> {
    return readPretrained(dir);
  }

  /** The top-level `config.json` of a saved model, checked (image size, special tokens, adapter kind, source). */
  static async readPretrainedConfig(dir: string): Promise<ETTPretrainedConfig> {
    return readPretrainedConfig(dir);
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

// ------------------------------------------------------------------ saved models (Node)

/**
 * A saved ETT model, read as `dir/config.json` and the three part directories. Every failure names
 * the file and says what to do; the parts loaded so far are disposed.
 */
async function readPretrained(dir: string): Promise<ETTModel> {
  const { join } = await import('node:path');
  const config = await readPretrainedConfig(dir);
  const where = 'ETTModel.fromPretrained';
  const part = async <T>(name: string, sub: string, load: (d: string) => Promise<T>): Promise<T> => {
    try {
      return await load(join(dir, sub));
    } catch (e) {
      throw new ETTModelError(
        `${where}: cannot load the ${name} from ${join(dir, sub)}: ${(e as Error).message}. The directory is incomplete or corrupt; write it again with model.savePretrained(dir) or \`ett export\``,
      );
    }
  };
  const owned: { dispose(): void }[] = [];
  try {
    const tokenizer = await part('vision tokenizer', ETT_MODEL_DIRS.visionTokenizer, (d) => VQTokenizer.fromPretrained(d));
    owned.push(tokenizer);
    const adapter = await part('adapter', ETT_MODEL_DIRS.adapter, loadVisualAdapter);
    owned.push(adapter);
    const got = adapter instanceof CodebookProjector ? 'projector' : 'index';
    if (got !== config.adapter_kind) {
      throw new ETTModelError(
        `${where}: ${join(dir, 'config.json')} names a "${config.adapter_kind}" adapter but ${join(dir, ETT_MODEL_DIRS.adapter)} holds a "${got}" one; write the model again with savePretrained`,
      );
    }
    const lm = await part('LM', ETT_MODEL_DIRS.lm, (d) => AutoregressiveLM.fromPretrained(d));
    owned.push(lm);
    const text = await part('text tokenizer', ETT_MODEL_DIRS.lm, loadTextTokenizer);
    const wrong = (Object.keys(config.special_tokens) as (keyof SpecialIds)[]).filter(
      (k) => text.specialTokens[k] !== config.special_tokens[k],
    );
    if (wrong.length > 0) {
      throw new ETTModelError(
        `${where}: the special tokens in ${join(dir, 'config.json')} (${JSON.stringify(config.special_tokens)}) differ from the text tokenizer in ${join(dir, ETT_MODEL_DIRS.lm)} (${wrong.map((k) => `${k} ${text.specialTokens[k]}`).join(', ')}); write the model again with savePretrained`,
      );
    }
    return new ETTModel({ tokenizer, adapter, lm, text, imageSize: config.image_size });
  } catch (e) {
    for (const m of owned) m.dispose();
    throw e;
  }
}

/** Reads and checks `dir/config.json` of a saved ETT model. */
async function readPretrainedConfig(dir: string): Promise<ETTPretrainedConfig> {
  const { readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const file = join(dir, 'config.json');
  const where = 'ETTModel.fromPretrained';
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ETTModelError(
      `${where}: cannot read ${file} (${(e as Error).message}); "${dir}" is not a saved ETT model: write one with model.savePretrained(dir) or \`ett export --run RUN --stage understanding --out ${dir}\``,
    );
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ETTModelError(`${where}: ${file} is not valid JSON (${(e as Error).message}); write the model again with savePretrained`);
  }
  if (json === null || typeof json !== 'object' || json.model_type !== ETT_MODEL_TYPE) {
    throw new ETTModelError(
      `${where}: ${file} has model_type ${JSON.stringify(json?.model_type)}, expected "${ETT_MODEL_TYPE}"; an LM alone loads with AutoregressiveLM.fromPretrained, a tokenizer with VQTokenizer.fromPretrained`,
    );
  }
  const version = json.format_version;
  if (!Number.isInteger(version) || (version as number) < 1 || (version as number) > ETT_FORMAT_VERSION) {
    throw new ETTModelError(
      `${where}: ${file} has format_version ${JSON.stringify(version)}; this ettjs reads versions 1 to ${ETT_FORMAT_VERSION} (a newer ettjs wrote it: upgrade ettjs)`,
    );
  }
  const ids = json.special_tokens as Record<string, unknown> | undefined;
  const badIds = ['bos', 'eos', 'pad', 'boi', 'eoi'].filter((k) => !Number.isInteger(ids?.[k]));
  if (!Number.isInteger(json.image_size) || badIds.length > 0 || (json.adapter_kind !== 'projector' && json.adapter_kind !== 'index')) {
    throw new ETTModelError(
      `${where}: ${file} needs an integer image_size, special_tokens with integer ${['bos', 'eos', 'pad', 'boi', 'eoi'].join(', ')} and adapter_kind "projector" or "index"; got ${JSON.stringify({ image_size: json.image_size, special_tokens: ids, adapter_kind: json.adapter_kind })}`,
    );
  }
  return json as unknown as ETTPretrainedConfig;
}

/**
 * Writes `model` to `dir` through a temporary sibling directory renamed into place, so a crash
 * never leaves a half-written model; an existing saved model in `dir` is replaced, any other
 * non-empty directory is left alone (error).
 */
async function writePretrained(model: ETTModel, dir: string, options: SavePretrainedOptions): Promise<void> {
  const where = 'ETTModel.savePretrained';
  const { tokenizer, adapter, lm, text } = model;
  const unsupported = [
    tokenizer instanceof VQTokenizer ? null : `the vision tokenizer is a ${tokenizer.constructor.name}, not a VQTokenizer`,
    adapter instanceof CodebookProjector || adapter instanceof IndexEmbedding
      ? null
      : `the adapter is a ${adapter.constructor.name}, not a CodebookProjector or IndexEmbedding`,
    lm instanceof AutoregressiveLM ? null : `the LM is a ${lm.constructor.name}, not an AutoregressiveLM`,
    text instanceof ByteTokenizer || text instanceof HFTokenizer
      ? null
      : `the text tokenizer is a ${text.constructor.name}, not a ByteTokenizer or HFTokenizer`,
  ].filter((x) => x !== null);
  if (unsupported.length > 0) {
    throw new ETTModelError(`${where}: ${unsupported.join('; ')}. Save such parts with their own save methods instead`);
  }
  const { mkdir, readdir, rename, rm, writeFile } = await import('node:fs/promises');
  const { dirname, basename, join } = await import('node:path');
  const existing = await readdir(dir).catch(() => null);
  if (existing && existing.length > 0) {
    const isModel = await readPretrainedConfig(dir).then(
      () => true,
      () => false,
    );
    if (!isModel) {
      throw new ETTModelError(
        `${where}: ${dir} exists and is not a saved ETT model (it holds ${existing.slice(0, 5).join(', ')}); choose another directory or empty it`,
      );
    }
  }
  await mkdir(dirname(dir), { recursive: true });
  const stamp = `${process.pid}-${Date.now().toString(36)}`;
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${stamp}`);
  const old = join(dirname(dir), `.${basename(dir)}.old-${stamp}`);
  try {
    await mkdir(tmp);
    await (tokenizer as VQTokenizer).savePretrained(join(tmp, ETT_MODEL_DIRS.visionTokenizer));
    await (adapter as CodebookProjector | IndexEmbedding).savePretrained(join(tmp, ETT_MODEL_DIRS.adapter));
    await (lm as AutoregressiveLM).savePretrained(join(tmp, ETT_MODEL_DIRS.lm));
    await saveTextTokenizer(text, join(tmp, ETT_MODEL_DIRS.lm));
    const config: ETTPretrainedConfig = {
      model_type: ETT_MODEL_TYPE,
      format_version: ETT_FORMAT_VERSION,
      image_size: model.imageSize,
      special_tokens: { ...model.ids },
      adapter_kind: adapter instanceof IndexEmbedding ? 'index' : 'projector',
      ...(options.source ? { source: options.source } : {}),
    };
    await writeFile(join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    if (existing) await rename(dir, old);
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  await rm(old, { recursive: true, force: true });
}

/** Disposes every tensor of a tokenizer output. */
export function disposeTokens(t: TokenizerOutput): void {
  t.quantized.dispose();
  t.indices.dispose();
  for (const l of Object.values(t.losses)) l.dispose();
}
