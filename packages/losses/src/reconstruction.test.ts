import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { expectClose, finiteDifferences, take } from '../test/helpers';
import { l1Loss, l2Loss, psnr } from './reconstruction';

describe('reconstruction terms', () => {
  it('L1 and L2 equal hand computations', async () => {
    // x − y = [0.5, −1, 0.25, 2]: mean |.| = 3.75/4, mean (.)² = (0.25 + 1 + 0.0625 + 4)/4
    const x = tf.tensor4d([1, 0, 0.5, 3], [1, 2, 2, 1]);
    const y = tf.tensor4d([0.5, 1, 0.25, 1], [1, 2, 2, 1]);
    expectClose(await take(l1Loss(x, y)), [3.75 / 4], 1e-7);
    expectClose(await take(l2Loss(x, y)), [5.3125 / 4], 1e-7);
    tf.dispose([x, y]);
  });

  it('L1 has the gradient of finite differences', async () => {
    const y = tf.tensor4d([0.3, -0.2, 0.9, -0.7, 0.1, 0.4], [1, 1, 3, 2]);
    const x = tf.tensor4d([0.5, -0.6, 0.2, -0.1, 0.35, 0.8], [1, 1, 3, 2]);
    const { analytic, numeric } = await finiteDifferences((t) => l1Loss(t, y), x, [0, 1, 2, 3, 4, 5], 1e-3);
    expectClose(analytic, numeric, 1e-3);
    expectClose(
      analytic,
      [1, -1, -1, 1, 1, 1].map((s) => s / 6),
      1e-7,
    ); // sign(x − y)/N
    tf.dispose([x, y]);
  });

  it('PSNR is 10·log10(R²/mse) per image, averaged over the batch', async () => {
    const x = tf.zeros([2, 2, 2, 1]) as tf.Tensor4D;
    // image 0: every pixel off by 0.2 → mse 0.04; image 1: off by 0.02 → mse 4e-4
    const y = tf.tensor4d([...Array(4).fill(0.2), ...Array(4).fill(0.02)], [2, 2, 2, 1]);
    const per = [10 * Math.log10(4 / 0.04), 10 * Math.log10(4 / 4e-4)]; // 20 dB, 40 dB
    expectClose(await take(psnr(x, y, { reduction: 'none' })), per, 1e-4);
    expectClose(await take(psnr(x, y)), [30], 1e-4);
    expectClose(await take(psnr(x, y, { dataRange: 1 })), [30 - 10 * Math.log10(4)], 1e-4);
    expect((await take(psnr(x, x)))[0]).toBe(Number.POSITIVE_INFINITY);
    tf.dispose([x, y]);
  });

  it('rejects mismatched shapes', () => {
    tf.tidy(() => {
      expect(() => l1Loss(tf.zeros([1, 2]), tf.zeros([2, 1]))).toThrow(/same shape/);
      expect(() => psnr(tf.zeros([1, 2, 2, 1]) as tf.Tensor4D, tf.zeros([1, 2, 2, 1]) as tf.Tensor4D, { dataRange: 0 })).toThrow(
        /dataRange/,
      );
    });
  });
});
