import * as tf from '@tensorflow/tfjs-core';
import { type AutoregressiveLM, LMInputError } from './autoregressive_lm';
import type { LMKVCache } from './kv_cache';
import { type Rng, settleHostChecks } from '@ettjs/core';
import { checkSamplingOptions, chooseToken, type RandomSource, type SamplingOptions, seededRandom, toRandomSource } from './sampling';

export interface GenerateOptions extends SamplingOptions {
  /** Prompt token ids `[B][T]` (all rows the same length; left-pad and pass `attentionMask` for ragged prompts). */
  inputIds?: readonly (readonly number[])[];
  /** Or a prefix of input embeddings `[B, T, C]` (e.g. `[BOS] <boi> visual embeddings <eoi>`). Not disposed. */
  inputsEmbeds?: tf.Tensor3D;
  /** Prompt padding mask `[B][T]`, 1 = token, 0 = left padding. Positions then count real tokens only (HF). Defaults to all ones. */
  attentionMask?: readonly (readonly number[])[];
  /** Most tokens generated per row. Defaults to 20 (HF `max_length` 20 is the analogous default). */
  maxNewTokens?: number;
  /** A row stops after producing one of these (not included in its output). Defaults to the config's `eos_token_id`, or none. */
  stopTokens?: readonly number[];
  /** Seed of the sampler (ignored when greedy). Defaults to 0. */
  seed?: number;
  /** Or an explicit uniform source or core `Rng`, e.g. to continue one stream over calls. */
  random?: RandomSource | Rng;
  /** Decode with the KV cache (true) or recompute the full sequence every step (false, the reference path). Defaults to true. */
  useCache?: boolean;
}

export interface GenerateOutput {
  /** New tokens per row, without the stop token. */
  tokens: number[][];
  /** Why each row ended: a stop token or `maxNewTokens`. */
  finishReasons: ('stop' | 'length')[];
}

function defaultStops(lm: AutoregressiveLM): number[] {
  const eos = lm.config.eosTokenId;
  return eos === null ? [] : Array.isArray(eos) ? eos : [eos];
}

/** Prompt positions from a padding mask (HF: cumsum(mask) - 1, padding at 1) and the next position per row. */
function promptPositions(mask: readonly (readonly number[])[]): { positions: number[][]; next: number[] } {
  const positions = mask.map((row) => {
    let seen = 0;
    return row.map((m) => (m ? seen++ : 1));
  });
  return { positions, next: mask.map((row) => row.reduce((s, m) => s + (m ? 1 : 0), 0)) };
}

/**
 * Autoregressive text generation with a KV cache: greedy, or sampling with temperature, top-k and
 * top-p, stop tokens and a token budget. Cached decoding produces the same tokens as full
 * recomputation (`useCache: false`). Frees every tensor it creates.
 */
export async function generate(lm: AutoregressiveLM, options: GenerateOptions): Promise<GenerateOutput> {
  const { inputIds, inputsEmbeds, attentionMask } = options;
  if ((inputIds === undefined) === (inputsEmbeds === undefined))
    throw new LMInputError('generate: pass exactly one of inputIds or inputsEmbeds');
  checkSamplingOptions(options);
  const maxNew = options.maxNewTokens ?? 20;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new LMInputError(`generate: maxNewTokens must be an integer >= 0, got ${maxNew}`);
  let b: number;
  let t: number;
  if (inputIds) {
    b = inputIds.length;
    t = inputIds[0]?.length ?? 0;
    if (b === 0 || t === 0 || inputIds.some((r) => r.length !== t)) {
      throw new LMInputError(
        'generate: inputIds must be a non-empty [B][T] array with equal-length rows (left-pad and pass attentionMask)',
      );
    }
  } else {
    if (!(inputsEmbeds instanceof tf.Tensor) || inputsEmbeds.rank !== 3)
      throw new LMInputError('generate: inputsEmbeds must be a [B, T, C] tensor');
    [b, t] = inputsEmbeds.shape;
  }
  if (attentionMask && (attentionMask.length !== b || attentionMask.some((r) => r.length !== t))) {
    throw new LMInputError(`generate: attentionMask must be ${b} rows of ${t} (the prompt's shape)`);
  }
  const stops = new Set(options.stopTokens ?? defaultStops(lm));
  const random = options.random ? toRandomSource(options.random) : seededRandom(options.seed ?? 0);
  const useCache = options.useCache ?? true;

  const tokens: number[][] = Array.from({ length: b }, () => []);
  const finishReasons: ('stop' | 'length')[] = new Array(b).fill('length');
  const done = new Array<boolean>(b).fill(false);
  const { positions, next } = attentionMask ? promptPositions(attentionMask) : { positions: undefined, next: new Array<number>(b).fill(t) };
  const fullMask = attentionMask?.map((r) => [...r]);
  const prefix = () => (inputIds ? lm.embed(tf.tensor2d(inputIds as number[][], [b, t], 'int32')) : tf.clone(inputsEmbeds as tf.Tensor3D));
  // A finished row keeps being fed its last token (its output is ignored), so the batch stays rectangular.
  const lastTokens = new Array<number>(b).fill(0);
  let cache: LMKVCache | undefined = useCache ? lm.newCache() : undefined;

  try {
    for (let step = 0; step < maxNew && !done.every(Boolean); step++) {
      const logits = tf.tidy(() => {
        let embeds: tf.Tensor3D;
        let pos: number[][] | undefined;
        let mask: tf.Tensor2D | undefined;
        if (cache && step > 0) {
          embeds = lm.embed(tf.tensor2d(lastTokens, [b, 1], 'int32'));
          pos = positions ? next.map((p) => [p + step - 1]) : undefined;
        } else {
          embeds = prefix();
          if (step > 0) {
            const generated = lm.embed(tf.tensor2d(tokensMatrix(tokens, lastTokens, step), [b, step], 'int32'));
            embeds = tf.concat([embeds, generated], 1);
          }
          pos = positions?.map((row, i) => [...row, ...Array.from({ length: step }, (_, j) => next[i] + j)]);
          if (fullMask)
            mask = tf.tensor2d(
              fullMask.map((r) => [...r, ...new Array(step).fill(1)]),
              [b, t + step],
            );
        }
        return lm.forward({ inputsEmbeds: embeds, cache, attentionMask: mask, positionIds: pos, logits: 'last' }).logits; // [B, 1, V]
      });
      const values = await logits.data();
      logits.dispose();
      await settleHostChecks(); // id checks queued where reads are asynchronous (WebGPU)
      const v = lm.vocabSize;
      for (let i = 0; i < b; i++) {
        if (done[i]) continue;
        const row = values.subarray(i * v, (i + 1) * v);
        if (row.some((x) => !Number.isFinite(x)))
          throw new LMInputError(`generate: non-finite logits at step ${step} for row ${i}; the model weights or inputs hold NaN/Inf`);
        const id = chooseToken(row, options, random);
        lastTokens[i] = id;
        if (stops.has(id)) {
          done[i] = true;
          finishReasons[i] = 'stop';
        } else {
          tokens[i].push(id);
        }
      }
    }
  } finally {
    cache?.dispose();
    cache = undefined;
  }
  return { tokens, finishReasons };
}

/** Every token fed so far per row (finished rows repeat their last token), `[B * step]` row-major. */
function tokensMatrix(tokens: number[][], last: number[], step: number): number[][] {
  return tokens.map((row, i) => {
    const r = row.slice(0, step);
    while (r.length < step) r.push(last[i]);
    return r;
  });
}

export interface GenerateVisualOptions extends Omit<SamplingOptions, 'allowedIds'> {
  /** Prefix embeddings `[B, T, C]`, e.g. `[BOS] caption <boi>`. Not disposed. */
  inputsEmbeds: tf.Tensor3D;
  /** Codes to generate per row (h·w, raster order). */
  numCodes: number;
  /**
   * Embeds sampled codes `[B, 1]` (int32) as the next LM inputs `[B, 1, C]`: in ETT the codebook
   * row through the projector. Called inside a `tf.tidy`.
   */
  embedCodes: (codes: tf.Tensor2D) => tf.Tensor3D;
  /** Only these codes can be chosen. Defaults to all K. */
  allowedCodes?: readonly number[];
  seed?: number;
  random?: RandomSource | Rng;
}

/**
 * Image-code generation with the visual head: at each image position the next code is chosen from
 * the head's K logits only (so sampling is constrained to visual codes), then fed back through
 * `embedCodes`. Uses a KV cache. Returns codes `[B][numCodes]`.
 */
export async function generateVisualCodes(lm: AutoregressiveLM, options: GenerateVisualOptions): Promise<number[][]> {
  const { inputsEmbeds, numCodes, embedCodes } = options;
  if (!lm.visual_head) throw new LMInputError('generateVisualCodes: the model has no visual head; set visualVocabSize > 0');
  if (!(inputsEmbeds instanceof tf.Tensor) || inputsEmbeds.rank !== 3)
    throw new LMInputError('generateVisualCodes: inputsEmbeds must be a [B, T, C] tensor');
  if (!Number.isInteger(numCodes) || numCodes < 1)
    throw new LMInputError(`generateVisualCodes: numCodes must be a positive integer, got ${numCodes}`);
  const sampling: SamplingOptions = { ...options, allowedIds: options.allowedCodes };
  checkSamplingOptions(sampling);
  const b = inputsEmbeds.shape[0];
  const k = lm.visualVocabSize;
  const random = options.random ? toRandomSource(options.random) : seededRandom(options.seed ?? 0);
  const codes: number[][] = Array.from({ length: b }, () => []);
  const cache = lm.newCache();
  try {
    for (let step = 0; step < numCodes; step++) {
      const logits = tf.tidy(() => {
        let embeds: tf.Tensor3D;
        if (step === 0) embeds = tf.clone(inputsEmbeds);
        else {
          embeds = embedCodes(
            tf.tensor2d(
              codes.map((r) => [r[step - 1]]),
              [b, 1],
              'int32',
            ),
          );
          if (
            !(embeds instanceof tf.Tensor) ||
            embeds.rank !== 3 ||
            embeds.shape[0] !== b ||
            embeds.shape[1] !== 1 ||
            embeds.shape[2] !== lm.hiddenSize
          ) {
            throw new LMInputError(
              `generateVisualCodes: embedCodes must return [${b}, 1, ${lm.hiddenSize}], got ${embeds instanceof tf.Tensor ? `[${embeds.shape}]` : typeof embeds}`,
            );
          }
        }
        const { hidden } = lm.forward({ inputsEmbeds: embeds, cache, logits: 'last' });
        const last = tf.slice(hidden, [0, hidden.shape[1] - 1, 0], [b, 1, lm.hiddenSize]) as tf.Tensor3D;
        return lm.visualLogits(last); // [B, 1, K]
      });
      const values = await logits.data();
      logits.dispose();
      await settleHostChecks(); // id checks queued where reads are asynchronous (WebGPU)
      for (let i = 0; i < b; i++) codes[i].push(chooseToken(values.subarray(i * k, (i + 1) * k), sampling, random));
    }
  } finally {
    cache.dispose();
  }
  return codes;
}
