import * as tf from '@tensorflow/tfjs-core';

/** A serializable generator state (JSON-safe: store it in `trainer.json`). */
export interface RngState {
  algorithm: 'xoshiro128**';
  /** The four 32-bit state words, as unsigned integers. */
  s: [number, number, number, number];
}

/** splitmix32 finalizer: spreads a 32-bit input over all output bits (seeding only). */
function mix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** FNV-1a over the UTF-16 code units of a label, then mixed. */
function hashString(label: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  return mix32(h);
}

/** Four state words from four seed words, never all zero (the one state xoshiro cannot leave). */
function expand(a: number, b: number): [number, number, number, number] {
  const s: [number, number, number, number] = [mix32(a), mix32(b ^ 0x6a09e667), mix32(a ^ 0xbb67ae85), mix32(b + 0x3c6ef372)];
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
  return s;
}

const TWO_POW_32 = 4294967296;

/**
 * A seeded pseudo-random generator (xoshiro128**, Blackman & Vigna 2018: 128-bit state, period
 * 2^128 − 1) for reproducible parameter init and data order. JavaScript's `Math.random` cannot be
 * seeded and tfjs's seeded ops do not expose their state, so a run could not be resumed exactly.
 *
 * `state()` / `Rng.fromState()` save and restore it; `fork(label)` derives an independent stream
 * per purpose (`init`, `data`, `dropout`) so adding draws to one does not shift the others.
 */
export class Rng {
  #s: [number, number, number, number];

  /** `seed`: an integer (any safe integer; the high bits count) or a string. */
  constructor(seed: number | string = 0) {
    if (typeof seed === 'string') {
      this.#s = expand(hashString(seed), hashString(seed, 0x01000193));
    } else {
      if (!Number.isSafeInteger(seed)) throw new Error(`Rng: seed must be a safe integer or a string, got ${seed}`);
      const lo = seed >>> 0;
      const hi = Math.floor(seed / TWO_POW_32) >>> 0;
      this.#s = expand(lo, hi);
    }
  }

  /** Restores a generator from `state()`: it continues the same sequence. */
  static fromState(state: RngState): Rng {
    const s = state?.s;
    if (
      state?.algorithm !== 'xoshiro128**' ||
      !Array.isArray(s) ||
      s.length !== 4 ||
      !s.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_POW_32)
    ) {
      throw new Error(
        `Rng.fromState: expected { algorithm: 'xoshiro128**', s: [four unsigned 32-bit integers] }, got ${JSON.stringify(state)}. Pass what rng.state() returned.`,
      );
    }
    if ((s[0] | s[1] | s[2] | s[3]) === 0) throw new Error('Rng.fromState: the all-zero state is invalid for xoshiro128**');
    const rng = new Rng(0);
    rng.#s = [s[0], s[1], s[2], s[3]];
    return rng;
  }

  /** A copy of the current state (JSON-serializable). */
  state(): RngState {
    return { algorithm: 'xoshiro128**', s: [...this.#s] as RngState['s'] };
  }

  /** An independent copy at the same position. */
  clone(): Rng {
    return Rng.fromState(this.state());
  }

  /** Next raw 32-bit output as an unsigned integer. */
  nextUint32(): number {
    const s = this.#s;
    const s1 = s[1];
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    // Keep the words unsigned so state() is stable across the |0 / >>>0 conventions above.
    s[0] >>>= 0;
    s[1] >>>= 0;
    s[2] >>>= 0;
    s[3] >>>= 0;
    return r;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling). `n` must be an integer in [1, 2^32]. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) throw new Error(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    // Reject the top partial block so every residue is equally likely.
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  /** Standard normal sample (Box–Muller; one of the pair is used, so the state stays 4 words). */
  normal(mean = 0, std = 1): number {
    const u1 = 1 - this.next(); // (0, 1]: log stays finite
    const u2 = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Shuffles `array` in place (Fisher–Yates) and returns it. */
  shuffle<T>(array: T[]): T[] {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** A random permutation of `0 … n − 1`. */
  permutation(n: number): number[] {
    if (!Number.isInteger(n) || n < 0) throw new Error(`Rng.permutation: n must be a non-negative integer, got ${n}`);
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  /**
   * An independent generator derived from this one's current state and `label`; this generator
   * does not advance. The same state and label always give the same stream; different labels give
   * unrelated streams.
   */
  fork(label: string): Rng {
    if (typeof label !== 'string' || !label) throw new Error('Rng.fork: label must be a non-empty string');
    const h = hashString(label);
    const [a, b, c, d] = this.#s;
    const rng = new Rng(0);
    rng.#s = [mix32(a ^ h), mix32(b ^ mix32(h)), mix32(c ^ mix32(h ^ 0x9e3779b9)), mix32(d ^ mix32(h + 0x7f4a7c15))];
    if ((rng.#s[0] | rng.#s[1] | rng.#s[2] | rng.#s[3]) === 0) rng.#s[0] = 1;
    return rng;
  }

  /** A float32 tensor of normal samples with the given std and mean (e.g. GPT-style init, std 0.02). */
  normalTensor(shape: number[], std = 1, mean = 0): tf.Tensor {
    const values = new Float32Array(checkShape(shape, 'normalTensor'));
    for (let i = 0; i < values.length; i++) values[i] = this.normal(mean, std);
    return tf.tensor(values, shape, 'float32');
  }

  /** A float32 tensor uniform in [lo, hi) (e.g. Kaiming-uniform / codebook init). */
  uniformTensor(shape: number[], lo = 0, hi = 1): tf.Tensor {
    if (!(hi >= lo)) throw new Error(`Rng.uniformTensor: need lo <= hi, got [${lo}, ${hi})`);
    const values = new Float32Array(checkShape(shape, 'uniformTensor'));
    for (let i = 0; i < values.length; i++) values[i] = lo + (hi - lo) * this.next();
    return tf.tensor(values, shape, 'float32');
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function checkShape(shape: number[], op: string): number {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`Rng.${op}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * `tf.randomNormal` with the seed honoured for every value, 0 included. tfjs 4.22's Gaussian sampler
 * reads `seed ? seed : Math.random()`, so seed 0 silently meant "unseeded" (different weights on
 * every build). Seed 0 is passed as the string `'0'`, which gives the stream tfjs would use for it
 * (`alea(String(seed))`); other seeds go through unchanged, and `undefined` stays unseeded.
 */
export function seededRandomNormal(shape: number[], mean: number, std: number, seed: number | undefined): tf.Tensor {
  const s = seed === 0 ? ('0' as unknown as number) : seed;
  return tf.randomNormal(shape, mean, std, 'float32', s);
}
