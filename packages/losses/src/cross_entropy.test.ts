import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { expectClose, finiteDifferences, reference, take } from '../test/helpers';
import { captionLoss } from './caption';
import { visualCodeLoss } from './visual_code';

const ce = reference.crossEntropy;

describe('captionLoss / visualCodeLoss against PyTorch F.cross_entropy(ignore_index=-100)', () => {
  for (const c of ce.cases as {
    labelSmoothing: number;
    shift: boolean;
    loss: number;
    grad: number[][][];
    accuracy: number;
    tokens: number;
  }[]) {
    it(`matches loss, gradient, accuracy and token count (smoothing ${c.labelSmoothing}, shift ${c.shift})`, async () => {
      const logits = tf.tensor3d(ce.logits);
      const labels = tf.tensor2d(ce.labels, undefined, 'int32');
      const opts = { labelSmoothing: c.labelSmoothing };
      const run = (l: tf.Tensor) =>
        c.shift ? captionLoss(l as tf.Tensor3D, labels, opts) : visualCodeLoss(l as tf.Tensor3D, labels, opts);
      const r = run(logits);
      expectClose(await take(r.loss), [c.loss], 1e-5, 1e-5);
      expectClose(await take(r.accuracy), [c.accuracy], 1e-6);
      expect(await take(r.tokens)).toEqual([c.tokens]);
      const grad = tf.grad((l: tf.Tensor) => run(l).loss)(logits);
      expectClose(await take(grad), c.grad.flat(2), 1e-6, 1e-4);
      logits.dispose();
      labels.dispose();
    });
  }
});

describe('captionLoss', () => {
  it('has the gradient of finite differences with a label mask, and none on masked positions', async () => {
    const logits = tf.tensor3d(ce.logits);
    const labels = tf.tensor2d(ce.labels, undefined, 'int32');
    const mask = tf.tensor2d([
      [1, 1, 0, 1, 1, 1],
      [1, 1, 1, 1, 0, 1],
    ]);
    const f = (l: tf.Tensor) => captionLoss(l as tf.Tensor3D, labels, { mask, labelSmoothing: 0.1 }).loss;
    const V = 7;
    // positions (b, t) of the logits: (0,1) predicts label (0,2) which the mask removes
    const coords = [0 * 6 * V + 1 * V + 3, 0 * 6 * V + 2 * V + 0, 1 * 6 * V + 0 * V + 5, 1 * 6 * V + 4 * V + 2];
    const { analytic, numeric } = await finiteDifferences(f, logits, coords, 1e-2);
    expectClose(analytic, numeric, 2e-3, 1e-2);
    expect(Math.abs(analytic[0])).toBe(0); // masked target: no gradient at all
    expect(analytic[3]).not.toBe(0);
    // the last position predicts nothing under shift
    const g = await take(tf.tidy(() => tf.grad(f)(logits)));
    expect(g.slice(5 * V, 6 * V).every((v) => v === 0)).toBe(true);
    for (const t of [logits, labels, mask]) t.dispose();
  });

  it('returns 0 loss and 0 tokens when nothing is supervised', async () => {
    const r = tf.tidy(() => captionLoss(tf.zeros([1, 3, 4]) as tf.Tensor3D, tf.fill([1, 3], -100, 'int32') as tf.Tensor2D));
    expect(await take(r.loss)).toEqual([0]);
    expect(await take(r.tokens)).toEqual([0]);
    r.accuracy.dispose();
  });

  it('makes the loss NaN when a supervised label is out of range (never silently 0)', async () => {
    const r = tf.tidy(() => captionLoss(tf.zeros([1, 3, 4]) as tf.Tensor3D, tf.tensor2d([[0, 1, 9]], undefined, 'int32')));
    expect(Number.isNaN((await take(r.loss))[0])).toBe(true);
    r.accuracy.dispose();
    r.tokens.dispose();
  });

  it('is stable for huge logits (log-softmax)', async () => {
    const r = tf.tidy(() =>
      captionLoss(
        tf.tensor3d([
          [
            [1e4, -1e4],
            [1e4, -1e4],
          ],
        ]),
        tf.tensor2d([[0, 1]], undefined, 'int32'),
      ),
    );
    expectClose(await take(r.loss), [2e4], 1);
    r.accuracy.dispose();
    r.tokens.dispose();
  });

  it('rejects bad shapes, dtypes and options with messages saying what was expected', () => {
    tf.tidy(() => {
      const l = tf.zeros([2, 3, 4]) as tf.Tensor3D;
      const y = tf.zeros([2, 3], 'int32') as tf.Tensor2D;
      expect(() => captionLoss(l, tf.zeros([2, 3]) as tf.Tensor2D)).toThrow(/int32/);
      expect(() => captionLoss(l, tf.zeros([2, 4], 'int32') as tf.Tensor2D)).toThrow(/share T/);
      expect(() => visualCodeLoss(l, tf.zeros([3, 3], 'int32') as tf.Tensor2D)).toThrow(/expected \[2, 3\]/);
      expect(() => visualCodeLoss(l, y, { labelSmoothing: 1 })).toThrow(/labelSmoothing/);
      expect(() => visualCodeLoss(l, y, { mask: tf.ones([2, 2]) as tf.Tensor2D })).toThrow(/mask must be \[2, 3\]/);
    });
  });
});
