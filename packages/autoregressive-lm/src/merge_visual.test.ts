import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { imageSlotMask, MergeVisualError, mergeVisualEmbeddings } from './merge_visual';

describe('mergeVisualEmbeddings', () => {
  // text row b, position t holds the value 100*b + t; visual row b, code k holds -(10*b + k + 1)
  const text = () => tf.tensor3d(Array.from({ length: 2 * 5 }, (_, i) => [100 * Math.floor(i / 5) + (i % 5), 0]).flat(), [2, 5, 2]);
  const visual = () => tf.tensor3d(Array.from({ length: 2 * 2 }, (_, i) => [-(10 * Math.floor(i / 2) + (i % 2) + 1), 1]).flat(), [2, 2, 2]);
  const slots = [
    [false, true, true, false, false],
    [true, false, false, false, true],
  ];

  it('puts the k-th visual embedding at the k-th slot and keeps text elsewhere', async () => {
    const out = tf.tidy(() => mergeVisualEmbeddings(text(), visual(), slots));
    expect(out.shape).toEqual([2, 5, 2]);
    expect(await out.array()).toEqual([
      [
        [0, 0],
        [-1, 1],
        [-2, 1],
        [3, 0],
        [4, 0],
      ],
      [
        [-11, 1],
        [101, 0],
        [102, 0],
        [103, 0],
        [-12, 1],
      ],
    ]);
    out.dispose();
  });

  it('builds slots from token ids and passes gradients to both inputs', async () => {
    expect(imageSlotMask([[1, 9, 9, 2]], 9)).toEqual([[false, true, true, false]]);
    const t = tf.ones([1, 4, 3]) as tf.Tensor3D;
    const v = tf.ones([1, 2, 3]) as tf.Tensor3D;
    const w = tf.tensor3d([
      [
        [1, 2, 3],
        [4, 5, 6],
        [7, 8, 9],
        [10, 11, 12],
      ],
    ]);
    const [gt, gv] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(mergeVisualEmbeddings(a as tf.Tensor3D, b as tf.Tensor3D, imageSlotMask([[1, 9, 9, 2]], 9)), w)),
    )([t, v]);
    expect(await gt.array()).toEqual([
      [
        [1, 2, 3],
        [0, 0, 0],
        [0, 0, 0],
        [10, 11, 12],
      ],
    ]);
    expect(await gv.array()).toEqual([
      [
        [4, 5, 6],
        [7, 8, 9],
      ],
    ]);
    tf.dispose([t, v, w, gt, gv]);
  });

  it('rejects slot counts, batches and widths that do not fit', () => {
    const run = (fn: () => void) => () => tf.tidy(fn);
    expect(run(() => void mergeVisualEmbeddings(text(), visual(), [slots[0], [true, true, true, false, false]]))).toThrow(
      /row 1 has more image slots than the 2/,
    );
    expect(run(() => void mergeVisualEmbeddings(text(), visual(), [slots[0], [true, false, false, false, false]]))).toThrow(
      /row 1 has 1 image slots but there are 2/,
    );
    expect(run(() => void mergeVisualEmbeddings(text(), tf.zeros([2, 2, 3]) as tf.Tensor3D, slots))).toThrow(MergeVisualError);
    expect(run(() => void mergeVisualEmbeddings(text(), visual(), [slots[0]]))).toThrow(/slots must be 2 rows of 5/);
  });
});
