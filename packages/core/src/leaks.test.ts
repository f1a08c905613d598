import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { assertNoLeaks, TensorLeakError, tensorCountsOver } from './leaks';

describe('assertNoLeaks', () => {
  it('returns the result of leak-free work (sync and async)', async () => {
    expect(
      await assertNoLeaks(() =>
        tf.tidy(() => {
          tf.sum(tf.ones([3]));
          return 1;
        }),
      ),
    ).toBe(1);
    const v = await assertNoLeaks(async () => {
      const t = tf.ones([2]);
      const d = await t.data();
      t.dispose();
      return d.length;
    });
    expect(v).toBe(2);
  });

  it('throws TensorLeakError with the count and the label when tensors are left behind', async () => {
    let kept: tf.Tensor[] = [];
    const err = await assertNoLeaks(() => {
      kept = [tf.ones([1]), tf.zeros([2])];
    }, 'my step').catch((e) => e);
    expect(err).toBeInstanceOf(TensorLeakError);
    expect(err.leaked).toBe(2);
    expect(err.message).toMatch(/^my step: 2 tensor\(s\) leaked.*tf.tidy/);
    tf.dispose(kept);
  });
});

describe('tensorCountsOver', () => {
  it('is flat for a leak-free step and grows by one per call for a leaky one', async () => {
    const base = tf.memory().numTensors;
    expect(await tensorCountsOver(4, () => tf.tidy(() => tf.add(tf.ones([2]), 1)).dispose())).toEqual([base, base, base, base]);
    const leaked: tf.Tensor[] = [];
    const counts = await tensorCountsOver(3, async (i) => {
      leaked.push(tf.scalar(i));
    });
    expect(counts).toEqual([base + 1, base + 2, base + 3]);
    tf.dispose(leaked);
  });
});
