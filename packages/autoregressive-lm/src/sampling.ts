import { Rng } from '@ettjs/core';

/**
 * Next-token choice on one row of logits, in plain JS (the logits are read back once per step, so
 * the choice is exact and reproducible with a seed). Order of the warpers as HF's `generate`:
 * temperature, then top-k, then top-p.
 */

export interface SamplingOptions {
  /** Sample from the distribution; false picks the argmax (greedy). Defaults to false (HF `do_sample`). */
  doSample?: boolean;
  /** Divides the logits before sampling. Defaults to 1 (HF). Ignored when greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (ties at the k-th kept, as HF). 0 disables. Defaults to 50 (HF `top_k`). Ignored when greedy. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (nucleus sampling). Defaults to 1 (off, HF). Ignored when greedy. */
  topP?: number;
  /** Only these ids can be chosen (constrained decoding, e.g. visual codes at image positions). Defaults to all. */
  allowedIds?: readonly number[];
}

export const DEFAULT_SAMPLING: Required<Omit<SamplingOptions, 'allowedIds'>> = { doSample: false, temperature: 1, topK: 50, topP: 1 };

/** Invalid sampling options. */
export class SamplingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SamplingError';
  }
}

/** A uniform [0, 1) source. */
export type RandomSource = () => number;

/** A seeded uniform source on core's `Rng` (xoshiro128**): the same seed gives the same samples everywhere. */
export function seededRandom(seed: number): RandomSource {
  const rng = new Rng(seed);
  return () => rng.next();
}

/** Accepts a plain `() => number` or a core `Rng` (e.g. a trainer's forked stream, whose state it advances). */
export function toRandomSource(random: RandomSource | Rng): RandomSource {
  return random instanceof Rng ? () => random.next() : random;
}

export function checkSamplingOptions(o: SamplingOptions): void {
  if (o.temperature !== undefined && !(o.temperature > 0 && Number.isFinite(o.temperature))) {
    throw new SamplingError(`temperature must be > 0, got ${o.temperature}; use doSample: false for greedy decoding`);
  }
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0))
    throw new SamplingError(`topK must be an integer >= 0 (0 = off), got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new SamplingError(`topP must be in (0, 1], got ${o.topP}`);
  if (o.allowedIds !== undefined && o.allowedIds.length === 0) throw new SamplingError('allowedIds is empty: nothing could be generated');
}

/**
 * The filtered distribution sampling draws from: probabilities (float64) over the vocabulary, zero
 * for tokens removed by `allowedIds`, top-k or top-p.
 */
export function samplingDistribution(logits: ArrayLike<number>, options: SamplingOptions = {}): Float64Array {
  checkSamplingOptions(options);
  const o = { ...DEFAULT_SAMPLING, ...options };
  const v = logits.length;
  const scores = new Float64Array(v).fill(Number.NEGATIVE_INFINITY);
  const ids = allowedList(v, options.allowedIds);
  for (const i of ids) scores[i] = logits[i] / o.temperature;
  if (o.topK > 0 && o.topK < ids.length) {
    const kth = [...ids].map((i) => scores[i]).sort((a, b) => b - a)[o.topK - 1];
    for (const i of ids) if (scores[i] < kth) scores[i] = Number.NEGATIVE_INFINITY;
  }
  const probs = softmax(scores);
  if (o.topP < 1) {
    // HF TopPLogitsWarper: drop a token when the tokens ranked above it already hold >= top_p mass.
    const order = [...ids].filter((i) => probs[i] > 0).sort((a, b) => probs[b] - probs[a] || a - b);
    let above = 0;
    for (const i of order) {
      const p = probs[i];
      if (above >= o.topP) probs[i] = 0;
      above += p;
    }
    let total = 0;
    for (const i of ids) total += probs[i];
    for (const i of ids) probs[i] /= total;
  }
  return probs;
}

/** Chooses the next token from one row of logits: argmax (greedy) or a sample of `samplingDistribution`. */
export function chooseToken(logits: ArrayLike<number>, options: SamplingOptions, random: RandomSource): number {
  if (!(options.doSample ?? DEFAULT_SAMPLING.doSample)) {
    checkSamplingOptions(options);
    let best = -1;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (const i of allowedList(logits.length, options.allowedIds)) {
      if (best < 0 || logits[i] > bestScore) {
        best = i;
        bestScore = logits[i];
      }
    }
    return best;
  }
  const probs = samplingDistribution(logits, options);
  const u = random();
  let acc = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue;
    acc += probs[i];
    last = i;
    if (u < acc) return i;
  }
  return last; // u within rounding of 1
}

function allowedList(v: number, allowed?: readonly number[]): number[] {
  if (!allowed) return Array.from({ length: v }, (_, i) => i);
  for (const id of allowed) {
    if (!Number.isInteger(id) || id < 0 || id >= v) throw new SamplingError(`allowedIds contains ${id}, outside the vocabulary [0, ${v})`);
  }
  return [...new Set(allowed)].sort((a, b) => a - b);
}

function softmax(scores: Float64Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const s of scores) if (s > max) max = s;
  const out = new Float64Array(scores.length);
  if (max === Number.NEGATIVE_INFINITY) throw new SamplingError('every token was filtered out (non-finite logits?)');
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    out[i] = Math.exp(scores[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}
