import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
it('sum gradient works', () => {
  const g = tf.tidy(() =>
    tf
      .grad((x: tf.Tensor) => x.square().sum())(tf.tensor([1, 2, 3]))
      .arraySync(),
  );
  expect(g).toEqual([2, 4, 6]);
});
