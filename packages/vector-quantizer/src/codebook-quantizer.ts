import { hostReadsAreSync, Module, seededRandomNormal } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { DEFAULT_MAX_BLOCK_ELEMENTS, gatherRows } from './code-search';
import { VQInputError } from './errors';
import { CodebookUsage, codePerplexity, uniqueCodes } from './usage';

/**
 * How the codebook learns. `gradient` (the default): it is a trainable parameter, so every loss,
 * ETT's caption loss included, updates it through the optimizer. `ema`: VQ-VAE-2 style moving
 * averages of the assigned latents, applied by `update()`; the codebook is then not trainable and
 * downstream gradients do not reach it.
 */
export type CodebookUpdate = { kind: 'gradient' } | { kind: 'ema'; decay: number; epsilon?: number };

/**
 * Dead-code restart (lucidrains `threshold_ema_dead_code`, taming/Jukebox style): a code that no
 * token selected during `afterSteps` consecutive `update()` calls is replaced by a latent sampled
 * from the batches recorded since the last update.
 */
export type DeadCodeRestart = { kind: 'off' } | { kind: 'batch-samples'; afterSteps: number };

/** IBQ / MAGVIT-v2 entropy penalty on the affinities `z·Eᵀ` (see `codebookEntropyLoss`). */
export type EntropyPenalty = { kind: 'off' } | { kind: 'on'; temperature: number; weight: number };

/** How to initialise the codebook: `normal` N(0, 1) (PyTorch nn.Embedding, IBQ), `uniform` U(−1/K, 1/K) (taming). */
export type CodebookInit = 'normal' | 'uniform';

/** Options every quantizer shares. */
export interface CodebookOptions {
  /** Number of codes K. Required. */
  codebookSize: number;
  /** Code dimension D. Required. */
  codeDim: number;
  /** l2-normalise latents and codes before the search (cosine similarity; LlamaGen). Defaults to false (IBQ, #48). */
  l2Normalize: boolean;
  /** Codebook learning rule. Defaults to `{ kind: 'gradient' }` (ETT needs caption gradients in the codebook). */
  codebookUpdate: CodebookUpdate;
  /** Replace codes unused for a while. Defaults to `{ kind: 'off' }`. */
  deadCodeRestart: DeadCodeRestart;
  /** Entropy penalty. Defaults differ per quantizer (IBQ: on, 0.01 / 0.05; VQ: off). */
  entropy: EntropyPenalty;
  /** Usage window, in training batches. Defaults to 100. */
  usageWindow: number;
  /** Freeze the codebook (not trainable). Defaults to false. */
  frozen: boolean;
  /** Codebook initialisation. Defaults per quantizer. */
  init: CodebookInit;
  /** Seed for the initialisation and for restart sampling. Defaults to 0. */
  seed: number;
  /** Upper bound on the floats of one `[rows, K]` logits block. Defaults to 2^22 (16 MiB). */
  maxBlockElements: number;
}

/** Whether an encode updates the quantizer's statistics. */
export interface QuantizeCallOptions {
  /**
   * `true`: record usage, and keep the batch for `update()` (EMA, restart). `false`: compute
   * everything, mutate nothing (usage and perplexity then describe this batch alone).
   * Defaults to the quantizer's mode (`train()` / `eval()`; a new quantizer is in training mode).
   */
  training?: boolean;
}

/** What a quantizer returns. Every tensor belongs to the caller. */
export interface QuantizerResult<T extends tf.Tensor = tf.Tensor> {
  /** Quantised latents, the input's shape, carrying gradient as the quantizer defines. */
  quantized: T;
  /** Code indices, the input's shape without the last axis, int32. */
  indices: tf.Tensor;
  /** Loss terms, each a scalar, each **unweighted** (see `lossWeights`). */
  losses: Record<string, tf.Scalar>;
  /** The weight each term gets in the quantizer's total loss (`weightedQuantizerLoss`). */
  lossWeights: Record<string, number>;
  /** Codebook usage over the window (training) or this batch (eval), and this batch's perplexity. */
  stats: { usage: number; perplexity: number };
}

/** `Σ_name lossWeights[name] · losses[name]`: the quantizer's contribution to `L_vq`. */
export function weightedQuantizerLoss(result: Pick<QuantizerResult, 'losses' | 'lossWeights'>): tf.Scalar {
  return tf.tidy(() => {
    let total: tf.Scalar = tf.scalar(0);
    for (const [name, term] of Object.entries(result.losses)) {
      const w = result.lossWeights[name];
      if (w === undefined) throw new Error(`weightedQuantizerLoss: no weight for loss "${name}"`);
      if (w !== 0) total = tf.add(total, tf.mul(term, w));
    }
    return total;
  });
}

/** What `update()` did. */
export interface QuantizerUpdateReport {
  /** Batches consumed. */
  batches: number;
  /** Codes replaced by dead-code restart. */
  restarted: number;
}

/** mulberry32: a small seeded generator for restart sampling (deterministic across runs). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Recorded batches kept when `update()` is never called. */
const MAX_PENDING_BATCHES = 256;

interface PendingBatch {
  indices: Int32Array;
  /** Latents as searched (normalised when `l2Normalize`), `[N·D]`; only kept when EMA or restart needs them. */
  latents: Float32Array | null;
}

/** A training batch recorded where reads are asynchronous (WebGPU): kept tensors until `settle()`. */
interface DeviceBatch {
  indices: tf.Tensor1D;
  latents: tf.Tensor2D | null;
}

function disposeDeviceBatch(b: DeviceBatch): void {
  b.indices.dispose();
  b.latents?.dispose();
}

/**
 * The codebook and its bookkeeping, shared by `IBQQuantizer` and `VectorQuantizer`: the codebook
 * variable (`embedding`, `[K, D]`), EMA buffers, the usage window, and `update()`.
 *
 * Variables are only mutated by `update()`, which the trainer calls after the optimizer step,
 * outside any gradient tape. A training encode records the batch's indices (and, when EMA or
 * restart is on, its latents as a plain Float32Array, so nothing holds tensors between calls).
 *
 * Where tensors cannot be read synchronously (WebGPU; see `hostReadsAreSync` in @ettjs/core) a
 * training encode keeps copies of the indices and latents on the device instead, and
 * `await settle()` reads them; `update()` then works as above. Statistics returned by such an
 * encode are those of the batches settled so far (one step behind); an eval-mode encode there
 * returns NaN statistics rather than stall on a read.
 */
export abstract class CodebookQuantizer<O extends CodebookOptions = CodebookOptions> extends Module {
  readonly options: Readonly<O>;
  readonly embedding: tf.Variable;
  readonly #emaClusterSize: tf.Variable | null = null;
  readonly #emaEmbedSum: tf.Variable | null = null;
  readonly #usage: CodebookUsage;
  readonly #sinceUsed: Int32Array;
  readonly #random: () => number;
  #pending: PendingBatch[] = [];
  #onDevice: DeviceBatch[] = [];
  #lastPerplexity = Number.NaN;
  #training = true;
  #warnedPending = false;

  constructor(options: O) {
    super();
    const { codebookSize: k, codeDim: d } = options;
    if (!Number.isInteger(k) || k < 2) throw new RangeError(`${new.target.name}: codebookSize must be an integer >= 2, got ${k}`);
    if (!Number.isInteger(d) || d < 1) throw new RangeError(`${new.target.name}: codeDim must be an integer >= 1, got ${d}`);
    if (options.codebookUpdate.kind === 'ema' && !(options.codebookUpdate.decay > 0 && options.codebookUpdate.decay < 1)) {
      throw new RangeError(`${new.target.name}: EMA decay must be in (0, 1), got ${options.codebookUpdate.decay}`);
    }
    if (options.deadCodeRestart.kind === 'batch-samples' && !(options.deadCodeRestart.afterSteps >= 1)) {
      throw new RangeError(`${new.target.name}: deadCodeRestart.afterSteps must be >= 1, got ${options.deadCodeRestart.afterSteps}`);
    }
    if (options.entropy.kind === 'on' && !(options.entropy.temperature > 0)) {
      throw new RangeError(`${new.target.name}: entropy.temperature must be > 0, got ${options.entropy.temperature}`);
    }
    this.options = Object.freeze({ ...options });
    const init =
      options.init === 'normal'
        ? seededRandomNormal([k, d], 0, 1, options.seed)
        : tf.randomUniform([k, d], -1 / k, 1 / k, 'float32', options.seed);
    const ema = options.codebookUpdate.kind === 'ema';
    this.embedding = this.addParameter('embedding', init, { trainable: !ema && !options.frozen });
    if (ema) {
      this.#emaClusterSize = this.addBuffer('ema_cluster_size', tf.ones([k]));
      this.#emaEmbedSum = this.addBuffer('ema_embed_sum', tf.clone(this.embedding));
    }
    this.#usage = new CodebookUsage(k, options.usageWindow);
    this.#sinceUsed = new Int32Array(k);
    this.#random = mulberry32(options.seed + 0x9e3779b9);
  }

  get codebookSize(): number {
    return this.options.codebookSize;
  }

  get codeDim(): number {
    return this.options.codeDim;
  }

  /** Training mode (the default): encodes record usage and batches for `update()`. */
  train(): this {
    this.#training = true;
    return this;
  }

  /** Evaluation mode: encodes mutate nothing. */
  eval(): this {
    this.#training = false;
    return this;
  }

  get training(): boolean {
    return this.#training;
  }

  /** Codebook usage over the window (fraction of codes selected in the last `usageWindow` training batches). */
  get usage(): number {
    return this.#usage.usage;
  }

  /** Training batches recorded since the last `update()`. */
  get pendingBatches(): number {
    return this.#pending.length;
  }

  /** The codes as searched: l2-normalised rows when `l2Normalize`, else the raw codebook. `[K, D]`. */
  protected searchCodebook(): tf.Tensor2D {
    return (this.options.l2Normalize ? l2NormalizeRows(this.embedding as tf.Tensor2D) : this.embedding) as tf.Tensor2D;
  }

  /** Codebook rows (as the quantizer outputs them) for indices of any shape: `[...S]` → `[...S, D]`. */
  embed(indices: tf.Tensor): tf.Tensor {
    if (indices.dtype !== 'int32') throw new VQInputError(`${this.constructor.name}.embed: indices must be int32, got ${indices.dtype}`);
    return tf.tidy(() => {
      const flat = tf.reshape(indices, [-1]) as tf.Tensor1D;
      const rows = gatherRows(this.searchCodebook(), flat, this.options.maxBlockElements); // [N, D]
      return tf.reshape(rows, [...indices.shape, this.codeDim]);
    });
  }

  /** Checks `z` `[..., D]` and flattens it to `[N, D]`. */
  protected flatten(z: tf.Tensor): tf.Tensor2D {
    const name = this.constructor.name;
    if (z.rank < 2) throw new VQInputError(`${name}: expected latents [..., ${this.codeDim}] of rank >= 2, got shape [${z.shape}]`);
    if (z.shape[z.rank - 1] !== this.codeDim) {
      throw new VQInputError(
        `${name}: the last axis of the latents must be the code dimension ${this.codeDim}, got shape [${z.shape}]. Check quant_conv's output channels.`,
      );
    }
    if (z.dtype !== 'float32') throw new VQInputError(`${name}: latents must be float32, got ${z.dtype}`);
    return tf.reshape(z, [-1, this.codeDim]) as tf.Tensor2D;
  }

  /**
   * Bookkeeping after the indices are known: reads them back (a sync read of N ints), records
   * usage and the batch when training, and returns the stats. Where reads are asynchronous it
   * keeps device copies for `settle()` instead (see the class comment).
   */
  protected observe(indices: tf.Tensor1D, latents: tf.Tensor2D, call: QuantizeCallOptions): { usage: number; perplexity: number } {
    const training = call.training ?? this.#training;
    const needLatents = this.options.codebookUpdate.kind === 'ema' || this.options.deadCodeRestart.kind !== 'off';
    if (!hostReadsAreSync()) {
      if (!training) return { usage: Number.NaN, perplexity: Number.NaN };
      this.#onDevice.push({ indices: tf.keep(tf.clone(indices)), latents: needLatents ? tf.keep(tf.clone(latents)) : null });
      if (this.#onDevice.length > MAX_PENDING_BATCHES) {
        const dropped = this.#onDevice.shift() as DeviceBatch;
        disposeDeviceBatch(dropped);
        this.#warnUnconsumed('await settle() and update()');
      }
      return { usage: this.#usage.usage, perplexity: this.#lastPerplexity };
    }
    const idx = indices.dataSync() as Int32Array;
    const k = this.codebookSize;
    if (!training) return { usage: uniqueCodes(idx, k).length / k, perplexity: codePerplexity(idx, k) };
    this.#record(idx.slice(), needLatents ? (latents.dataSync() as Float32Array).slice() : null);
    return { usage: this.#usage.usage, perplexity: this.#lastPerplexity };
  }

  /**
   * Adds one training batch (host copies) to the usage window and the batches for `update()`. A
   * batch with non-finite latents is left out: it came from a step the Trainer rejects or skips (a
   * NaN input found by a deferred check, a diverged forward), and a restart would copy its NaNs
   * into the codebook.
   */
  #record(indices: Int32Array, latents: Float32Array | null): void {
    if (latents && !latents.every(Number.isFinite)) return;
    this.#lastPerplexity = codePerplexity(indices, this.codebookSize);
    this.#usage.record(indices);
    this.#pending.push({ indices, latents });
    if (this.#pending.length > MAX_PENDING_BATCHES) {
      // update() is not being called: keep memory bounded (EMA then sees only the latest batches).
      this.#pending.shift();
      this.#warnUnconsumed('call update()');
    }
  }

  #warnUnconsumed(what: string): void {
    if (this.#warnedPending) return;
    this.#warnedPending = true;
    console.warn(
      `${this.constructor.name}: ${MAX_PENDING_BATCHES} training batches recorded without update(); ${what} after each optimizer step (warned once)`,
    );
  }

  /** Training batches kept on the device, waiting for `settle()` (always 0 where reads are synchronous). */
  get unsettledBatches(): number {
    return this.#onDevice.length;
  }

  /**
   * Reads the training batches kept on the device (WebGPU) into the usage window and the batches
   * for `update()`, all reads in flight at once. A no-op where reads are synchronous. The Trainer
   * recipes of `ettjs` call it before `update()`.
   */
  async settle(): Promise<void> {
    const batches = this.#onDevice;
    this.#onDevice = [];
    if (batches.length === 0) return;
    try {
      const read = await Promise.all(
        batches.map(async (b) => ({
          indices: new Int32Array(await b.indices.data()),
          latents: b.latents ? new Float32Array(await b.latents.data()) : null,
        })),
      );
      for (const r of read) this.#record(r.indices, r.latents);
    } finally {
      for (const b of batches) disposeDeviceBatch(b);
    }
  }

  /**
   * Applies what the recorded training batches call for: the EMA codebook update and dead-code
   * restart. Call it after the optimizer step, outside any gradient tape; it consumes the
   * recorded batches. Without EMA and restart it only clears them.
   */
  update(): QuantizerUpdateReport {
    if (this.#onDevice.length > 0 && hostReadsAreSync()) {
      // Recorded while reads were deferred, read now that they are synchronous.
      for (const b of this.#onDevice.splice(0)) {
        this.#record((b.indices.dataSync() as Int32Array).slice(), b.latents ? (b.latents.dataSync() as Float32Array).slice() : null);
        disposeDeviceBatch(b);
      }
    }
    if (this.#onDevice.length > 0) {
      throw new VQInputError(
        `${this.constructor.name}.update: ${this.#onDevice.length} training batch(es) are still on the device (this backend reads asynchronously); ` +
          'call `await quantizer.settle()` (or `await tokenizer.settle()`) before update()',
      );
    }
    const pending = this.#pending;
    this.#pending = [];
    const k = this.codebookSize;
    const d = this.codeDim;
    if (pending.length === 0) return { batches: 0, restarted: 0 };
    const counts = new Float32Array(k);
    for (const b of pending) for (const i of b.indices) counts[i]++;
    if (this.options.codebookUpdate.kind === 'ema') this.#emaUpdate(pending, counts, this.options.codebookUpdate);
    let restarted = 0;
    const restart = this.options.deadCodeRestart;
    if (restart.kind === 'batch-samples') {
      const dead: number[] = [];
      for (let c = 0; c < k; c++) {
        this.#sinceUsed[c] = counts[c] > 0 ? 0 : this.#sinceUsed[c] + 1;
        if (this.#sinceUsed[c] >= restart.afterSteps) dead.push(c);
      }
      const source = pending[pending.length - 1];
      const n = source.indices.length;
      if (dead.length > 0 && source.latents && n > 0) {
        const rows = new Float32Array(dead.length * d);
        for (let j = 0; j < dead.length; j++) {
          const r = Math.floor(this.#random() * n);
          rows.set(source.latents.subarray(r * d, (r + 1) * d), j * d);
          this.#sinceUsed[dead[j]] = 0;
        }
        this.#replaceRows(dead, rows);
        restarted = dead.length;
      }
    }
    return { batches: pending.length, restarted };
  }

  #emaUpdate(pending: PendingBatch[], counts: Float32Array, rule: { decay: number; epsilon?: number }): void {
    const k = this.codebookSize;
    const d = this.codeDim;
    const sums = new Float32Array(k * d);
    for (const b of pending) {
      const z = b.latents as Float32Array;
      b.indices.forEach((c, i) => {
        for (let j = 0; j < d; j++) sums[c * d + j] += z[i * d + j];
      });
    }
    const eps = rule.epsilon ?? 1e-5;
    const cs = this.#emaClusterSize as tf.Variable;
    const es = this.#emaEmbedSum as tf.Variable;
    tf.tidy(() => {
      const newCs = tf.add(tf.mul(cs, rule.decay), tf.mul(tf.tensor1d(counts), 1 - rule.decay));
      const newEs = tf.add(tf.mul(es, rule.decay), tf.mul(tf.tensor2d(sums, [k, d]), 1 - rule.decay));
      cs.assign(newCs);
      es.assign(newEs);
      // Laplace smoothing keeps a code with no assignments from dividing by zero (VQ-VAE-2).
      const total = tf.sum(newCs);
      const smoothed = tf.mul(tf.div(tf.add(newCs, eps), tf.add(total, k * eps)), total);
      this.embedding.assign(tf.div(newEs, tf.expandDims(smoothed, 1)));
    });
  }

  #replaceRows(codes: number[], rows: Float32Array): void {
    const k = this.codebookSize;
    const d = this.codeDim;
    tf.tidy(() => {
      const mask = new Float32Array(k);
      const src = new Int32Array(k);
      codes.forEach((c, j) => {
        mask[c] = 1;
        src[c] = j;
      });
      const replacement = tf.gather(tf.tensor2d(rows, [codes.length, d]), tf.tensor1d(src, 'int32')); // [K, D]
      const keep = tf.expandDims(tf.tensor1d(mask), 1); // [K, 1]
      const blend = (old: tf.Tensor) => tf.add(tf.mul(old, tf.sub(1, keep)), tf.mul(replacement, keep));
      this.embedding.assign(blend(this.embedding));
      if (this.#emaEmbedSum && this.#emaClusterSize) {
        // A restarted code starts with one assignment: its EMA sum is the sample itself.
        this.#emaEmbedSum.assign(blend(this.#emaEmbedSum));
        this.#emaClusterSize.assign(tf.add(tf.mul(this.#emaClusterSize, tf.sub(1, tf.squeeze(keep, [1]))), tf.squeeze(keep, [1])));
      }
    });
  }

  /** Frees the variables and any training batches still kept on the device. */
  override dispose(): void {
    this.#disposeDeviceBatches();
    super.dispose();
  }

  #disposeDeviceBatches(): void {
    for (const b of this.#onDevice) disposeDeviceBatch(b);
    this.#onDevice = [];
  }

  /** Forgets the usage window and recorded batches (e.g. after loading a checkpoint). */
  resetStats(): void {
    this.#usage.reset();
    this.#pending = [];
    this.#disposeDeviceBatches();
    this.#lastPerplexity = Number.NaN;
    this.#sinceUsed.fill(0);
  }
}

/**
 * Rows divided by their l2 norm (clamped at 1e-12, as F.normalize). The norm is sqrt(Σ x²): tf.norm
 * computes it as pow(|x|, 2), and tfjs-backend-wasm's Pow is a scalar libm call per element (93 µs
 * for [512, 16]) with a gradient of five more kernels.
 */
export function l2NormalizeRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.sqrt(tf.sum(tf.square(x), 1, true)), 1e-12)));
}

export { DEFAULT_MAX_BLOCK_ELEMENTS };
