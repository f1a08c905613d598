import { straightThrough } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { expectClose, reference, take } from '../test/helpers';
import { entropyLoss } from './entropy';
import { ibqQuantLoss, vqQuantLoss } from './quantization';

const q = reference.ibqQuant;

/** IBQ's forward, written independently of the quantizer package: z·Eᵀ, softmax, argmax, STE. */
function ibqTerms(z: tf.Tensor2D, E: tf.Tensor2D, hard: tf.Tensor2D) {
  const soft = tf.softmax(tf.matMul(z, E, false, true)); // [N, K]
  const zq = tf.matMul(straightThrough(hard, soft), E);
  const zqHard = tf.matMul(hard, E);
  return { z, zq, zqHard };
}

describe('ibqQuantLoss against PyTorch (IBQ quantize.py)', () => {
  for (const c of q.cases as { betaOn: 'codebook' | 'commitment'; loss: number; gradZ: number[][]; gradCodebook: number[][] }[]) {
    it(`matches loss and gradients to z and the codebook (β on ${c.betaOn})`, async () => {
      const z = tf.tensor2d(q.z);
      const E = tf.tensor2d(q.codebook);
      // indices are data: computed outside the tape (the tfjs gather-gradient pitfall)
      const hard = tf.tidy(() => tf.cast(tf.oneHot(tf.argMax(tf.matMul(z, E, false, true), 1), E.shape[0]), 'float32')) as tf.Tensor2D;
      const f = (a: tf.Tensor, b: tf.Tensor) =>
        ibqQuantLoss(ibqTerms(a as tf.Tensor2D, b as tf.Tensor2D, hard), { beta: q.beta, betaOn: c.betaOn });
      expectClose(await take(tf.tidy(() => f(z, E))), [c.loss], 1e-5, 1e-5);
      const [gz, gE] = tf.grads(f)([z, E]);
      expectClose(await take(gz), c.gradZ.flat(), 1e-6, 1e-4);
      expectClose(await take(gE), c.gradCodebook.flat(), 1e-6, 1e-4);
      tf.dispose([z, E, hard]);
    });
  }

  it('puts β on the term the option names', async () => {
    // z = 0, e = 1 (one element): commitment mean((sg(e) − z)²) = 1 → dL/dz = −2·w_commit
    const z = tf.scalar(0);
    const e = tf.scalar(1);
    const dz = async (betaOn: 'codebook' | 'commitment') =>
      (await take(tf.grad((t: tf.Tensor) => vqQuantLoss(t, e, { beta: 0.25, betaOn }))(z)))[0];
    expect(await dz('codebook')).toBeCloseTo(-2, 6);
    expect(await dz('commitment')).toBeCloseTo(-0.5, 6);
    const de = async (betaOn: 'codebook' | 'commitment') =>
      (await take(tf.grad((t: tf.Tensor) => vqQuantLoss(z, t, { beta: 0.25, betaOn }))(e)))[0];
    expect(await de('codebook')).toBeCloseTo(0.5, 6);
    expect(await de('commitment')).toBeCloseTo(2, 6);
    tf.dispose([z, e]);
  });

  it('rejects bad β, placement and shapes', () => {
    tf.tidy(() => {
      const a = tf.zeros([2, 3]);
      expect(() => vqQuantLoss(a, tf.zeros([3, 2]))).toThrow(/must match/);
      expect(() => vqQuantLoss(a, a, { beta: -1 })).toThrow(/beta/);
      expect(() => vqQuantLoss(a, a, { betaOn: 'both' as 'codebook' })).toThrow(/betaOn/);
    });
  });
});

describe('entropyLoss against PyTorch (IBQ compute_entropy_loss, τ = 0.01)', () => {
  it('matches both entropies, the loss and its gradient', async () => {
    const e = reference.entropy;
    const logits = tf.tensor3d(e.logits);
    const r = entropyLoss(logits, { temperature: e.temperature });
    expectClose(await take(r.sampleEntropy), [e.sampleEntropy], 1e-4, 1e-4);
    expectClose(await take(r.avgEntropy), [e.avgEntropy], 1e-4, 1e-4);
    expectClose(await take(r.loss), [e.loss], 1e-4, 1e-4);
    const g = tf.grad((l: tf.Tensor) => entropyLoss(l).loss)(logits);
    expectClose(await take(g), e.grad.flat(2), 1e-3, 1e-3);
    logits.dispose();
  });

  it('is −log K for a uniform one-hot spread and stable for large logits', async () => {
    // 4 samples, each confidently on a different code of K = 4: H_sample ≈ 0, H_avg = log 4
    const r = tf.tidy(() => entropyLoss(tf.mul(tf.eye(4), 100)));
    expectClose(await take(r.loss), [-Math.log(4)], 1e-4);
    r.sampleEntropy.dispose();
    r.avgEntropy.dispose();
  });
});
