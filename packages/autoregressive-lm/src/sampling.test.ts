import { describe, expect, it } from 'vitest';
import { chooseToken, SamplingError, samplingDistribution, seededRandom } from './sampling';

const close = (a: ArrayLike<number>, b: number[]) => {
  for (const [i, x] of b.entries()) expect(a[i]).toBeCloseTo(x, 10);
};

describe('sampling', () => {
  // softmax([ln 4, ln 3, ln 2, ln 1]) = [0.4, 0.3, 0.2, 0.1], checked by hand
  const logits = [Math.log(4), Math.log(3), Math.log(2), Math.log(1)];

  it('top-p keeps the smallest head reaching p, renormalised (HF TopPLogitsWarper)', () => {
    close(samplingDistribution(logits, { topP: 0.65, topK: 0 }), [4 / 7, 3 / 7, 0, 0]);
    close(samplingDistribution(logits, { topP: 0.7, topK: 0 }), [4 / 7, 3 / 7, 0, 0]); // 0.4 + 0.3 reaches 0.7 exactly
    close(samplingDistribution(logits, { topP: 0.71, topK: 0 }), [4 / 9, 3 / 9, 2 / 9, 0]);
    close(samplingDistribution(logits, { topP: 0.3, topK: 0 }), [1, 0, 0, 0]); // the top token is always kept
  });

  it('top-k keeps the k best (ties at the k-th kept); temperature sharpens', () => {
    close(samplingDistribution(logits, { topK: 2 }), [4 / 7, 3 / 7, 0, 0]);
    close(samplingDistribution([1, 2, 2, 0], { topK: 2 }), [0, 0.5, 0.5, 0]);
    close(samplingDistribution([1, 2, 2, 2], { topK: 2 }), [0, 1 / 3, 1 / 3, 1 / 3]);
    // T = 0.5 squares the probabilities: [16, 9, 4, 1] / 30
    close(samplingDistribution(logits, { temperature: 0.5, topK: 0 }), [16 / 30, 9 / 30, 4 / 30, 1 / 30]);
  });

  it('allowedIds constrains both greedy and sampled choices', () => {
    close(samplingDistribution(logits, { allowedIds: [2, 3] }), [0, 0, 2 / 3, 1 / 3]);
    expect(chooseToken(logits, { allowedIds: [3, 1] }, Math.random)).toBe(1);
    const r = seededRandom(5);
    for (let i = 0; i < 50; i++) expect([2, 3]).toContain(chooseToken(logits, { doSample: true, allowedIds: [2, 3] }, r));
  });

  it('greedy takes the argmax; topK 1 sampling equals greedy', () => {
    expect(chooseToken([0.1, 3, -1, 2.9], {}, Math.random)).toBe(1);
    const r = seededRandom(1);
    for (let i = 0; i < 20; i++) expect(chooseToken([0.1, 3, -1, 2.9], { doSample: true, topK: 1, temperature: 5 }, r)).toBe(1);
  });

  it('samples follow the distribution and are reproducible from a seed', () => {
    const counts = [0, 0, 0, 0];
    const r = seededRandom(42);
    const n = 5000;
    for (let i = 0; i < n; i++) counts[chooseToken(logits, { doSample: true, topK: 0 }, r)]++;
    for (const [i, p] of [0.4, 0.3, 0.2, 0.1].entries()) {
      expect(Math.abs(counts[i] / n - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / n));
    }
    const a = seededRandom(7);
    const b = seededRandom(7);
    const draw = (r: () => number) => Array.from({ length: 30 }, () => chooseToken(logits, { doSample: true }, r));
    expect(draw(a)).toEqual(draw(b));
  });

  it('rejects invalid options', () => {
    expect(() => samplingDistribution(logits, { temperature: 0 })).toThrow(SamplingError);
    expect(() => samplingDistribution(logits, { topP: 1.5 })).toThrow(/topP must be in \(0, 1\]/);
    expect(() => samplingDistribution(logits, { topK: -1 })).toThrow(/topK must be an integer >= 0/);
    expect(() => samplingDistribution(logits, { allowedIds: [] })).toThrow(/allowedIds is empty/);
    expect(() => chooseToken(logits, { allowedIds: [4] }, Math.random)).toThrow(/outside the vocabulary \[0, 4\)/);
  });
});
