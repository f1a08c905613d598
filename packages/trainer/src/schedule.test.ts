import { describe, expect, it } from 'vitest';
import { learningRateFactor, validateSchedule, warmupSteps } from './schedule';

describe('learningRateFactor', () => {
  it('is 1 for a constant schedule', () => {
    expect([0, 5, 99].map((s) => learningRateFactor({ kind: 'constant' }, s, 100))).toEqual([1, 1, 1]);
  });

  it('warms up linearly over ceil(3 % of the steps) by default (paper), as HF does', () => {
    const s = { kind: 'warmup-cosine' as const };
    expect(warmupSteps(s, 100)).toBe(3);
    expect(warmupSteps(s, 1000)).toBe(30);
    expect(warmupSteps(s, 10)).toBe(1); // ceil(0.3)
    expect([0, 1, 2].map((k) => learningRateFactor(s, k, 100))).toEqual([0, 1 / 3, 2 / 3]);
    expect(learningRateFactor(s, 3, 100)).toBe(1);
  });

  it('decays by cosine to minLrRatio (hand-computed points)', () => {
    const s = { kind: 'warmup-cosine' as const, warmupSteps: 4, minLrRatio: 0.1 };
    // progress = (step − 4) / 100; factor = 0.1 + 0.9 · 0.5 · (1 + cos(π · progress))
    expect(learningRateFactor(s, 54, 104)).toBeCloseTo(0.55, 12);
    expect(learningRateFactor(s, 29, 104)).toBeCloseTo(0.1 + 0.45 * (1 + Math.SQRT1_2), 12);
    expect(learningRateFactor(s, 104, 104)).toBeCloseTo(0.1, 12);
    expect(learningRateFactor({ kind: 'warmup-cosine', warmupSteps: 0 }, 50, 100)).toBeCloseTo(0.5, 12);
  });

  it('rejects bad schedules', () => {
    expect(() => validateSchedule('s', { kind: 'linear' })).toThrow(/kind must be 'constant' or 'warmup-cosine', got "linear"/);
    expect(() => validateSchedule('s', { kind: 'warmup-cosine', warmupRatio: 1.5 })).toThrow(/warmupRatio must be a number in \[0, 1\)/);
    expect(() => validateSchedule('s', { kind: 'constant', warmupSteps: 3 })).toThrow(/unknown key\(s\) "warmupSteps"/);
  });
});
