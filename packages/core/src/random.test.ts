import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { Rng, seededRandomNormal } from './random';

function draws(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.nextUint32());
}

function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  return { mean, std: Math.sqrt(variance) };
}

describe('Rng', () => {
  it('is xoshiro128**: matches the reference C algorithm from state (1, 2, 3, 4)', () => {
    // First output by hand: rotl(s1·5, 7)·9 = rotl(10, 7)·9 = 1280·9 = 11520; after one update
    // s1 = 0, so the second is 0. The rest from the reference next() (prng.di.unimi.it/xoshiro128starstar.c).
    const rng = Rng.fromState({ algorithm: 'xoshiro128**', s: [1, 2, 3, 4] });
    expect(draws(rng, 6)).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  it('is deterministic per seed; different seeds (including high bits and strings) differ', () => {
    expect(draws(new Rng(42), 20)).toEqual(draws(new Rng(42), 20));
    expect(draws(new Rng(42), 20)).not.toEqual(draws(new Rng(43), 20));
    expect(draws(new Rng(1), 20)).not.toEqual(draws(new Rng(1 + 2 ** 32), 20));
    expect(draws(new Rng('run-a'), 20)).toEqual(draws(new Rng('run-a'), 20));
    expect(draws(new Rng('run-a'), 20)).not.toEqual(draws(new Rng('run-b'), 20));
    expect(draws(new Rng(), 5)).toEqual(draws(new Rng(0), 5));
    expect(() => new Rng(1.5)).toThrow(/safe integer or a string/);
  });

  it('state() and fromState() continue the same sequence, through JSON', () => {
    const rng = new Rng(7);
    draws(rng, 13);
    rng.normal();
    const saved = JSON.parse(JSON.stringify(rng.state()));
    const expected = [draws(rng, 50), rng.normal(), rng.int(1000), rng.next()];
    const restored = Rng.fromState(saved);
    expect([draws(restored, 50), restored.normal(), restored.int(1000), restored.next()]).toEqual(expected);
    // state() is a snapshot, not a live view.
    const snap = rng.state();
    rng.next();
    expect(rng.state()).not.toEqual(snap);
    const c = rng.clone();
    expect(draws(c, 5)).toEqual(draws(rng, 5));
  });

  it('fromState rejects malformed and all-zero states', () => {
    expect(() => Rng.fromState({ algorithm: 'xoshiro128**', s: [1, 2, 3] } as never)).toThrow(
      /four unsigned 32-bit integers.*rng.state\(\)/,
    );
    expect(() => Rng.fromState({ algorithm: 'xoshiro128**', s: [1, 2, 3, 2 ** 32] })).toThrow(/four unsigned/);
    expect(() => Rng.fromState({ algorithm: 'pcg' as never, s: [1, 2, 3, 4] })).toThrow(/xoshiro128/);
    expect(() => Rng.fromState({ algorithm: 'xoshiro128**', s: [0, 0, 0, 0] })).toThrow(/all-zero/);
  });

  it('fork(label) gives reproducible independent streams without advancing the parent', () => {
    const rng = new Rng(3);
    const before = rng.state();
    const a = draws(rng.fork('data'), 20);
    expect(rng.state()).toEqual(before);
    expect(draws(rng.fork('data'), 20)).toEqual(a);
    expect(draws(rng.fork('init'), 20)).not.toEqual(a);
    expect(draws(rng.clone(), 20)).not.toEqual(a);
    expect(draws(new Rng(4).fork('data'), 20)).not.toEqual(a);
    expect(() => rng.fork('')).toThrow(/non-empty/);
  });

  it('next() is uniform on [0, 1): mean of 10k within 5 standard errors', () => {
    const rng = new Rng(11);
    const xs = Array.from({ length: 10_000 }, () => rng.next());
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    // Uniform: std 1/sqrt(12) ≈ 0.2887, standard error of the mean 0.0029.
    const { mean, std } = meanStd(xs);
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.015);
    expect(Math.abs(std - 0.2887)).toBeLessThan(0.01);
  });

  it('normal() has mean 0, std 1 and 68.3% within one std over 10k samples', () => {
    const rng = new Rng(12);
    const xs = Array.from({ length: 10_000 }, () => rng.normal());
    const { mean, std } = meanStd(xs);
    // Standard errors: mean 0.01, std ≈ 1/sqrt(2n) = 0.0071, fraction sqrt(0.683·0.317/n) = 0.0047.
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(Math.abs(std - 1)).toBeLessThan(0.03);
    const within = xs.filter((x) => Math.abs(x) < 1).length / xs.length;
    expect(Math.abs(within - 0.6827)).toBeLessThan(0.02);
    expect(xs.every(Number.isFinite)).toBe(true);
    const shifted = meanStd(Array.from({ length: 10_000 }, () => rng.normal(5, 0.1)));
    expect(Math.abs(shifted.mean - 5)).toBeLessThan(0.005);
    expect(Math.abs(shifted.std - 0.1)).toBeLessThan(0.003);
  });

  it('int(n) is uniform and unbiased even when n does not divide 2^32', () => {
    const rng = new Rng(13);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 10_000; i++) counts[rng.int(10)]++;
    // Chi-square with 9 degrees of freedom: P(χ² > 35) < 1e-4.
    const chi2 = counts.reduce((s, c) => s + (c - 1000) ** 2 / 1000, 0);
    expect(chi2).toBeLessThan(35);
    // With n = 3·2^30, plain `x % n` would put half the mass below 2^30 instead of a third.
    const n = 3 * 2 ** 30;
    let low = 0;
    let max = 0;
    for (let i = 0; i < 10_000; i++) {
      const x = rng.int(n);
      max = Math.max(max, x);
      if (x < 2 ** 30) low++;
    }
    expect(max).toBeLessThan(n);
    expect(Math.abs(low / 10_000 - 1 / 3)).toBeLessThan(0.02);
    expect(rng.int(1)).toBe(0);
    expect(() => rng.int(0)).toThrow(/integer in \[1, 2\^32\]/);
    expect(() => rng.int(2.5)).toThrow(/integer/);
  });

  it('shuffle and permutation give every ordering with equal frequency', () => {
    const rng = new Rng(14);
    const seen = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const key = rng.shuffle(['a', 'b', 'c']).join('');
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
    expect(seen.size).toBe(6);
    // Chi-square with 5 degrees of freedom: P(χ² > 26) < 1e-4.
    const chi2 = [...seen.values()].reduce((s, c) => s + (c - 1000) ** 2 / 1000, 0);
    expect(chi2).toBeLessThan(26);
    const p = rng.permutation(100);
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(new Rng(5).permutation(20)).toEqual(new Rng(5).permutation(20));
    expect(rng.permutation(0)).toEqual([]);
    const arr = [1, 2, 3];
    expect(rng.shuffle(arr)).toBe(arr);
  });

  it('normalTensor and uniformTensor are reproducible float32 tensors with the requested statistics', async () => {
    const a = new Rng(21).normalTensor([50, 40], 0.02);
    const b = new Rng(21).normalTensor([50, 40], 0.02);
    expect(a.shape).toEqual([50, 40]);
    expect(a.dtype).toBe('float32');
    const av = Array.from(await a.data());
    expect(av).toEqual(Array.from(await b.data()));
    const s = meanStd(av);
    expect(Math.abs(s.mean)).toBeLessThan(0.003); // 2000 samples: standard error 0.00045
    expect(Math.abs(s.std - 0.02)).toBeLessThan(0.0015);
    const u = new Rng(22).uniformTensor([1000], -0.5, 0.25);
    const uv = Array.from(await u.data());
    expect(Math.min(...uv)).toBeGreaterThanOrEqual(-0.5);
    expect(Math.max(...uv)).toBeLessThanOrEqual(0.25);
    expect(Math.abs(meanStd(uv).mean + 0.125)).toBeLessThan(0.035);
    const empty = new Rng(1).normalTensor([0, 3]);
    expect(empty.shape).toEqual([0, 3]);
    tf.dispose([a, b, u, empty]);
    expect(() => new Rng(1).normalTensor([2, -1])).toThrow(/non-negative integers/);
    expect(() => new Rng(1).uniformTensor([2], 1, 0)).toThrow(/lo <= hi/);
  });
});

describe('seededRandomNormal', () => {
  it('honours seed 0 (tfjs alone draws unseeded for 0) and leaves other seeds as tf.randomNormal draws them', () => {
    const draw = (seed: number | undefined) => tf.tidy(() => Array.from(seededRandomNormal([64], 0, 1, seed).dataSync()));
    // What tfjs does with seed 0 on its own: two different draws.
    const raw0 = tf.tidy(() => [
      tf.randomNormal([64], 0, 1, 'float32', 0).dataSync(),
      tf.randomNormal([64], 0, 1, 'float32', 0).dataSync(),
    ]);
    expect(Array.from(raw0[0])).not.toEqual(Array.from(raw0[1]));
    expect(draw(0)).toEqual(draw(0));
    expect(draw(0)).not.toEqual(draw(1));
    expect(draw(7)).toEqual(tf.tidy(() => Array.from(tf.randomNormal([64], 0, 1, 'float32', 7).dataSync())));
    expect(draw(undefined)).not.toEqual(draw(undefined));
    const v = draw(0);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    expect(Math.abs(mean)).toBeLessThan(0.5); // a standard normal sample, not a constant
    expect(new Set(v).size).toBe(64);
  });
});
