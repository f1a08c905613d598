import { type CausalLM, checkOnHost, Module, ModuleList, type StateDictMismatch, StateDictError } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import type { AttentionContext } from './attention';
import { type LMConfig, lmConfigFromHF, resolveLMConfig } from './config';
import { DecoderLayer } from './decoder_layer';
import { Embedding } from './embedding';
import { readHFConfig, readHFWeights, writeHFCheckpoint } from './hf_checkpoint';
import { LMKVCache } from './kv_cache';
import { Linear } from './linear';
import { RMSNorm } from './rms_norm';
import { RotaryEmbedding } from './rotary';

/** Bad input to the LM (wrong shape, id out of range, sequence too long): says what came and what was expected. */
export class LMInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LMInputError';
  }
}

/** Additive bias for masked attention scores (HF uses the dtype minimum; any value that zeroes exp() works). */
const MASKED = -1e9;

export interface LMForwardInput {
  /** Input embeddings `[B, T, C]` (token embeddings from `embed`, possibly with visual embeddings merged in). */
  inputsEmbeds: tf.Tensor3D;
  /** Cache from `newCache()`: the forward attends over its positions and appends this step's keys/values. */
  cache?: LMKVCache;
  /**
   * Key padding mask, 1 = attend, 0 = padding (HF `attention_mask`): `[B, past + T]`, or `[B, T]`
   * for just the new positions when a cache holds the past. Defaults to attending everything.
   * Outputs at padded query positions are unspecified.
   */
  attentionMask?: tf.Tensor2D;
  /** Rotary positions per row `[B][T]`. Defaults to `past .. past+T-1` for every row (HF's default). */
  positionIds?: readonly (readonly number[])[];
  /** `'last'` computes logits for the last position only (`[B, 1, V]`), as generation needs. Defaults to `'all'`. */
  logits?: 'all' | 'last';
}

export type LMForwardOutput = {
  /** Text logits `[B, T, V]` (or `[B, 1, V]` with `logits: 'last'`). */
  logits: tf.Tensor3D;
  /** Last hidden states after the final norm `[B, T, C]` (HF `last_hidden_state`). */
  hidden: tf.Tensor3D;
};

export interface FromPretrainedOptions {
  /**
   * Config overrides applied over config.json, e.g. `{ visualVocabSize: 1024 }` to add a fresh
   * visual head (its weights may then be absent from the checkpoint). Defaults to none.
   */
  config?: Partial<LMConfig>;
  /** Seed for weights the checkpoint does not hold (a new visual head). Defaults to unseeded. */
  seed?: number;
}

export interface SavePretrainedOptions {
  /** Split `model.safetensors` into shards of at most this many bytes, with an index JSON (HF `max_shard_size`). Defaults to no sharding. */
  maxShardBytes?: number;
}

/** Tensors HF checkpoints may carry that are derived, not learned: ignored on load. */
const IGNORED_ON_LOAD = /(^|\.)rotary_emb\.inv_freq$/;

/** The trunk under HF's `model.` prefix: embeddings, decoder layers, final norm. */
class DecoderStack extends Module {
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<DecoderLayer>;
  readonly norm: RMSNorm;

  constructor(config: Required<LMConfig>, seed?: number) {
    super();
    // HF's _init_weights: normal(0, initializer_range) for embeddings and linears, zero biases, unit norms.
    this.embed_tokens = this.addModule(
      'embed_tokens',
      new Embedding(config.vocabSize, config.hiddenSize, { std: config.initializerRange, seed }),
    );
    this.layers = this.addModule('layers', new ModuleList<DecoderLayer>());
    for (let i = 0; i < config.numLayers; i++) {
      this.layers.push(new DecoderLayer(i, config, seed === undefined ? undefined : seed + 100 * (i + 1)));
    }
    this.norm = this.addModule('norm', new RMSNorm(config.hiddenSize, config.rmsNormEps));
  }
}

/**
 * A decoder-only LM in LLaMA/Qwen2 form (RMSNorm, RoPE, SwiGLU, grouped-query attention, optional
 * q/k/v biases, tied or untied embeddings) whose parameter names are the HF tensor names
 * (`model.layers.0.self_attn.q_proj.weight`, ...), so `fromPretrained` / `savePretrained` read and
 * write HF checkpoints. Linear weights are held `[in, out]` and transposed at that boundary.
 */
export class AutoregressiveLM extends Module implements CausalLM {
  readonly config: Required<LMConfig>;
  readonly model: DecoderStack;
  readonly lm_head: Linear | null;
  /** Optional visual-code head (hidden → K code logits) for image generation; saved as `visual_head.*`. */
  readonly visual_head: Linear | null;
  readonly #rotary: RotaryEmbedding;

  constructor(config: Partial<LMConfig> = {}, options: { seed?: number } = {}) {
    super();
    this.config = resolveLMConfig(config);
    const c = this.config;
    const seed = options.seed;
    this.model = this.addModule('model', new DecoderStack(c, seed));
    this.lm_head = c.tieWordEmbeddings
      ? null
      : this.addModule(
          'lm_head',
          new Linear({
            inFeatures: c.hiddenSize,
            outFeatures: c.vocabSize,
            std: c.initializerRange,
            seed: seed === undefined ? seed : seed + 7,
          }),
        );
    this.visual_head =
      c.visualVocabSize > 0
        ? this.addModule(
            'visual_head',
            new Linear({
              inFeatures: c.hiddenSize,
              outFeatures: c.visualVocabSize,
              std: c.initializerRange,
              seed: seed === undefined ? seed : seed + 11,
            }),
          )
        : null;
    this.#rotary = new RotaryEmbedding(c.headDim, c.ropeTheta, c.ropeScaling);
  }

  get hiddenSize(): number {
    return this.config.hiddenSize;
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** K of the visual head, 0 when the model has none. */
  get visualVocabSize(): number {
    return this.config.visualVocabSize;
  }

  /** An empty KV cache for this model (dispose it when done). */
  newCache(): LMKVCache {
    return new LMKVCache(this.config.numLayers);
  }

  /** Token embeddings: ids `[B, T]` (int32, or float32 holding integers) → `[B, T, C]`. */
  embed(ids: tf.Tensor2D): tf.Tensor3D {
    this.#checkIds(ids);
    return tf.tidy(() => this.model.embed_tokens.apply(ids.dtype === 'int32' ? ids : tf.cast(ids, 'int32')));
  }

  #checkIds(ids: tf.Tensor): void {
    if (!(ids instanceof tf.Tensor) || ids.rank !== 2) {
      throw new LMInputError(
        `AutoregressiveLM.embed: expected token ids [B, T], got ${ids instanceof tf.Tensor ? `rank ${ids.rank} [${ids.shape}]` : typeof ids}`,
      );
    }
    // The range check reads the ids (small): tfjs's gather silently returns zeros for bad ids. At
    // once on CPU/WASM; on WebGPU at the Trainer's settleHostChecks().
    const v = this.config.vocabSize;
    checkOnHost(tf.clone(ids), (values) => {
      for (let i = 0; i < values.length; i++) {
        const id = values[i];
        if (!Number.isInteger(id) || id < 0 || id >= v) {
          throw new LMInputError(
            `AutoregressiveLM.embed: token id ${id} at flat position ${i} is outside the vocabulary [0, ${v}); ` +
              'check the tokenizer matches the model, or grow the embedding with resizeTokenEmbeddings',
          );
        }
      }
    });
  }

  /** Forward from token ids: `embed` then `forward`. */
  forwardIds(input: Omit<LMForwardInput, 'inputsEmbeds'> & { inputIds: tf.Tensor2D }): LMForwardOutput {
    const { inputIds, ...rest } = input;
    this.#checkIds(inputIds);
    return tf.tidy(() => {
      const embeds = this.embed(inputIds);
      return this.forward({ ...rest, inputsEmbeds: embeds });
    });
  }

  /** Forward from input embeddings `[B, T, C]`; see `LMForwardInput`. */
  forward(input: LMForwardInput): LMForwardOutput {
    const { inputsEmbeds: x, cache, attentionMask, positionIds } = input;
    const c = this.config;
    if (!(x instanceof tf.Tensor) || x.rank !== 3 || x.shape[2] !== c.hiddenSize) {
      throw new LMInputError(
        `AutoregressiveLM.forward: inputsEmbeds must be [B, T, ${c.hiddenSize}] (hiddenSize), got ${x instanceof tf.Tensor ? `[${x.shape}]` : typeof x}. ` +
          'Project visual features to the LM hidden size first.',
      );
    }
    const [b, t] = x.shape;
    if (t === 0) throw new LMInputError('AutoregressiveLM.forward: inputsEmbeds has no positions (T = 0)');
    if (cache !== undefined && !(cache instanceof LMKVCache))
      throw new LMInputError('AutoregressiveLM.forward: cache must come from lm.newCache()');
    if (cache && cache.numLayers !== c.numLayers)
      throw new LMInputError(`AutoregressiveLM.forward: cache has ${cache.numLayers} layers, the model ${c.numLayers}`);
    const past = cache?.length ?? 0;
    if (cache && cache.batchSize !== null && cache.batchSize !== b) {
      throw new LMInputError(
        `AutoregressiveLM.forward: batch size ${b} differs from the cache's ${cache.batchSize}; use one cache per batch`,
      );
    }
    const s = past + t;
    if (s > c.maxPositionEmbeddings) {
      throw new LMInputError(
        `AutoregressiveLM.forward: sequence length ${s} (${past} cached + ${t} new) exceeds maxPositionEmbeddings ${c.maxPositionEmbeddings}; shorten the input`,
      );
    }
    if (attentionMask !== undefined) {
      const ok =
        attentionMask instanceof tf.Tensor &&
        attentionMask.rank === 2 &&
        attentionMask.shape[0] === b &&
        (attentionMask.shape[1] === s || attentionMask.shape[1] === t);
      if (!ok) {
        throw new LMInputError(
          `AutoregressiveLM.forward: attentionMask must be [${b}, ${s}] (past + new)${past > 0 ? ` or [${b}, ${t}] (new only)` : ''}, got ${attentionMask instanceof tf.Tensor ? `[${attentionMask.shape}]` : typeof attentionMask}`,
        );
      }
    }
    const positions = this.#positions(b, t, past, positionIds);

    return tf.tidy((): LMForwardOutput => {
      const { cos, sin } = this.#rotary.tables(positions);
      const keyMask = this.#keyMask(b, t, past, attentionMask, cache);
      const ctx: AttentionContext = { cos, sin, bias: causalBias(b, t, past, keyMask), cache };
      let h = x;
      for (const layer of this.model.layers) h = layer.apply(h, ctx);
      const hidden = this.model.norm.apply(h); // [B, T, C]
      cache?.commit(t, b, keyMask);
      const head = input.logits === 'last' ? (tf.slice(hidden, [0, t - 1, 0], [b, 1, c.hiddenSize]) as tf.Tensor3D) : hidden;
      return { logits: this.#textLogits(head), hidden };
    });
  }

  #positions(b: number, t: number, past: number, positionIds?: readonly (readonly number[])[]): (readonly number[])[] {
    if (positionIds === undefined) return [Array.from({ length: t }, (_, i) => past + i)];
    const ok =
      Array.isArray(positionIds) &&
      positionIds.length === b &&
      positionIds.every((r) => Array.isArray(r) && r.length === t && r.every((p) => Number.isInteger(p) && p >= 0));
    if (!ok) throw new LMInputError(`AutoregressiveLM.forward: positionIds must be ${b} rows of ${t} non-negative integers`);
    return positionIds as number[][];
  }

  /** The full `[B, S]` key mask (float 0/1) or null when every key is attended. */
  #keyMask(b: number, t: number, past: number, mask: tf.Tensor2D | undefined, cache: LMKVCache | undefined): tf.Tensor2D | null {
    const cached = cache?.keyMask ?? null;
    if (!mask) return cached ? (tf.concat([cached, tf.ones([b, t])], 1) as tf.Tensor2D) : null;
    const m = tf.cast(mask, 'float32') as tf.Tensor2D;
    if (m.shape[1] === past + t) return tf.clone(m); // a fresh handle: the cache may keep it, the caller keeps theirs
    const before = cached ?? tf.ones([b, past]);
    return tf.concat([before, m], 1) as tf.Tensor2D;
  }

  #textLogits(hidden: tf.Tensor3D): tf.Tensor3D {
    const [b, t, c] = hidden.shape;
    const h2 = tf.reshape(hidden, [b * t, c]) as tf.Tensor2D;
    // Tied: logits = h Eᵀ, with Eᵀ as matMul's transposeB flag (a GEMM flag on the native wasm
    // kernels): a Transpose of the whole table per call cost 16 µs per generated token.
    const logits = this.lm_head ? this.lm_head.apply(h2) : tf.matMul(h2, this.model.embed_tokens.weight, false, true);
    return tf.reshape(logits, [b, t, this.config.vocabSize]);
  }

  /** Visual-code logits `[B, T, K]` from hidden states `[B, T, C]` (throws when the model has no visual head). */
  visualLogits(hidden: tf.Tensor3D): tf.Tensor3D {
    if (!this.visual_head) {
      throw new LMInputError(
        'AutoregressiveLM.visualLogits: this model has no visual head; build it with visualVocabSize > 0 (config or fromPretrained({ config }))',
      );
    }
    if (hidden.rank !== 3 || hidden.shape[2] !== this.config.hiddenSize) {
      throw new LMInputError(
        `AutoregressiveLM.visualLogits: expected hidden states [B, T, ${this.config.hiddenSize}], got [${hidden.shape}]`,
      );
    }
    const [b, t, c] = hidden.shape;
    const head = this.visual_head;
    return tf.tidy(() => tf.reshape(head.apply(tf.reshape(hidden, [b * t, c]) as tf.Tensor2D), [b, t, this.config.visualVocabSize]));
  }

  /**
   * A new model with `newSize` token embeddings (and output rows): existing rows are copied, new
   * rows set to the mean of the old ones (HF `resize_token_embeddings` with mean init), so adding
   * special tokens never shifts existing ids. Returns a new model; `this` is left as it was
   * (dispose it if no longer needed): a registered parameter cannot be swapped in place.
   */
  resizeTokenEmbeddings(newSize: number): AutoregressiveLM {
    if (!Number.isInteger(newSize) || newSize < 1)
      throw new LMInputError(`resizeTokenEmbeddings: newSize must be a positive integer, got ${newSize}`);
    const old = this.config.vocabSize;
    const resized = new AutoregressiveLM({ ...this.config, vocabSize: newSize });
    const resize = (w: tf.Tensor2D): tf.Tensor2D => {
      if (newSize <= old) return tf.slice(w, [0, 0], [newSize, w.shape[1]]) as tf.Tensor2D;
      const mean = tf.mean(w, 0, true);
      return tf.concat([w, tf.tile(mean, [newSize - old, 1])], 0) as tf.Tensor2D;
    };
    tf.tidy(() => {
      const dict: Record<string, tf.Tensor> = { ...this.stateDict() };
      dict['model.embed_tokens.weight'] = resize(this.model.embed_tokens.weight as tf.Tensor2D);
      if (this.lm_head) {
        // lm_head is [in, out] here: resize its columns (HF resizes the rows of [out, in]).
        dict['lm_head.weight'] = tf.transpose(resize(tf.transpose(this.lm_head.weight) as tf.Tensor2D));
      }
      resized.loadStateDict(dict);
    });
    for (const [name, v] of this.namedParameters()) {
      if (v.trainable === false) (resized.getModule(name.slice(0, name.lastIndexOf('.'))) as Module).freeze();
    }
    return resized;
  }

  // ------------------------------------------------------------------ HF checkpoints

  /** Names of parameters whose HF layout is the transpose of ours (every Linear weight). */
  #linearWeights(): Set<string> {
    const out = new Set<string>();
    const walk = (m: Module, prefix: string) => {
      if (m instanceof Linear) out.add(`${prefix}weight`);
      for (const [name, child] of m.namedChildren()) walk(child, `${prefix}${name}.`);
    };
    walk(this, '');
    return out;
  }

  /**
   * The parameters in HF layout and names (Linear weights `[out, in]`), as new tensors the caller
   * disposes. This is exactly what `savePretrained` writes.
   */
  hfStateDict(): Record<string, tf.Tensor> {
    const linear = this.#linearWeights();
    return tf.tidy(() =>
      Object.fromEntries(Object.entries(this.stateDict()).map(([n, v]) => [n, linear.has(n) ? tf.transpose(v) : tf.clone(v)])),
    );
  }

  /**
   * Loads tensors in HF layout and names. Every missing, unexpected or mis-shaped tensor is
   * reported by its HF name in one `StateDictError`. `allowMissing` names a prefix whose tensors may
   * be absent (they keep their init). Derived buffers (`rotary_emb.inv_freq`) and, with tied
   * embeddings, `lm_head.weight` are ignored. The caller keeps ownership of `dict`.
   */
  loadHFStateDict(dict: Record<string, tf.Tensor>, options: { allowMissing?: string } = {}): void {
    const linear = this.#linearWeights();
    const own = this.stateDict();
    const mismatches: StateDictMismatch[] = [];
    for (const [name, v] of Object.entries(own)) {
      const expected = linear.has(name) ? [...v.shape].reverse() : v.shape;
      const t = dict[name];
      if (!t) {
        if (!(options.allowMissing && name.startsWith(options.allowMissing)))
          mismatches.push({ name, problem: 'missing', expected: `[${expected}]` });
      } else if (!tf.util.arraysEqual(t.shape, expected)) {
        mismatches.push({ name, problem: 'shape', expected: `[${expected}]`, got: `[${t.shape}]` });
      }
    }
    for (const [name, t] of Object.entries(dict)) {
      if (own[name] || IGNORED_ON_LOAD.test(name) || (name === 'lm_head.weight' && this.config.tieWordEmbeddings)) continue;
      mismatches.push({ name, problem: 'unexpected', got: `[${t.shape}]` });
    }
    if (mismatches.length > 0) throw new StateDictError(mismatches, 'AutoregressiveLM.loadHFStateDict');
    tf.tidy(() => {
      const converted: Record<string, tf.Tensor> = {};
      for (const name of Object.keys(own)) {
        const t = dict[name];
        if (t) converted[name] = linear.has(name) ? tf.transpose(t) : t;
      }
      this.loadStateDict(converted, { strict: false });
    });
  }

  /**
   * Reads an HF-format directory: `config.json` (`model_type` llama or qwen2) and
   * `model.safetensors` or sharded safetensors with `model.safetensors.index.json`; F32/F16/BF16
   * weights become float32. Missing/unexpected tensors and shape mismatches throw, by name.
   */
  static async fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<AutoregressiveLM> {
    const json = await readHFConfig(dir);
    const base = lmConfigFromHF(json);
    const config = { ...base, ...options.config };
    const lm = new AutoregressiveLM(config, { seed: options.seed });
    try {
      const weights = await readHFWeights(dir);
      try {
        const newHead = config.visualVocabSize > 0 && base.visualVocabSize === 0;
        lm.loadHFStateDict(weights, newHead ? { allowMissing: 'visual_head.' } : {});
      } finally {
        for (const t of Object.values(weights)) t.dispose();
      }
    } catch (e) {
      lm.dispose();
      throw e;
    }
    return lm;
  }

  /** Writes `config.json` and `model.safetensors` (or shards + index) in HF format, float32. */
  async savePretrained(dir: string, options: SavePretrainedOptions = {}): Promise<void> {
    const tensors = this.hfStateDict();
    try {
      await writeHFCheckpoint(dir, this.config, tensors, options.maxShardBytes);
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
  }
}

/** Causal (key ≤ query position) and key-padding mask as an additive bias `[B|1, 1, T, S]`. */
function causalBias(b: number, t: number, past: number, keyMask: tf.Tensor2D | null): tf.Tensor4D {
  const s = past + t;
  const allowed = new Float32Array(t * s);
  for (let i = 0; i < t; i++) for (let j = 0; j <= past + i; j++) allowed[i * s + j] = 1;
  const causal = tf.tensor4d(allowed, [1, 1, t, s]);
  const both = keyMask ? tf.mul(causal, tf.reshape(keyMask, [b, 1, 1, s])) : causal;
  return tf.mul(tf.sub(1, both), MASKED) as tf.Tensor4D;
}
