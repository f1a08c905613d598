import { Rng } from '@ettjs/core';

/**
 * Randomness as a pure function of a key. The synthetic dataset derives sample `i` of a split from
 * `(seed, split, i)` and the loader derives epoch `e`'s order from `(seed, e)`, so neither holds
 * generator state: a data cursor `{seed, epoch, index}` is all a checkpoint needs to restore the
 * exact order, and any sample can be produced without producing the ones before it.
 */

/** 32-bit hash of a key (FNV-1a over the parts, then murmur3's fmix32 finaliser for avalanche). */
export function hashKey(...parts: readonly (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    const s = typeof part === 'number' ? `#${part}` : part;
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= 0xff; // part separator, so ('ab','c') and ('a','bc') differ
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A generator keyed by `parts`: core's seeded `Rng` (xoshiro128**) seeded with the joined key, so
 * the same key always gives the same stream and different keys give unrelated ones.
 */
export function keyedRng(...parts: readonly (string | number)[]): Rng {
  return new Rng(parts.map(String).join('\u0000'));
}

/** Uniform integer in [lo, hi] (both inclusive). */
export function between(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)]!;
}

/** The order of `n` records in one epoch: a Fisher–Yates permutation keyed by `(seed, epoch)`. */
export function epochPermutation(n: number, seed: number, epoch: number): readonly number[] {
  return keyedRng('epoch-order', seed, epoch).permutation(n);
}
