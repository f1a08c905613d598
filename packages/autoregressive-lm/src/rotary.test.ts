import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { RotaryEmbedding } from './rotary';

/** HF's rotate_half form written out: x·cos + [-x2, x1]·sin. */
function reference(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor {
  const [x1, x2] = tf.split(x, 2, 3);
  return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2), x1], 3), sin));
}

describe('RotaryEmbedding.apply', () => {
  it('equals x·cos + rotate_half(x)·sin bit for bit, and so does its gradient', async () => {
    const rope = new RotaryEmbedding(8, 10000);
    const { cos, sin } = rope.tables([
      [0, 1, 2, 3, 4],
      [3, 4, 5, 6, 7],
    ]);
    const x = tf.randomNormal([2, 3, 5, 8], 0, 2, 'float32', 7) as tf.Tensor4D;
    const w = tf.randomNormal([2, 3, 5, 8], 0, 1, 'float32', 8);
    const [got, want] = [RotaryEmbedding.apply(x, cos, sin), tf.tidy(() => reference(x, cos, sin))];
    expect(Array.from(await got.data())).toEqual(Array.from(await want.data()));
    const grad = (f: (a: tf.Tensor4D) => tf.Tensor) => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D), w)))(x);
    const [g1, g2] = [grad((a) => RotaryEmbedding.apply(a, cos, sin)), grad((a) => reference(a, cos, sin))];
    expect(Array.from(await g1.data())).toEqual(Array.from(await g2.data()));
    // Position 0 is the identity rotation; a rotation keeps each pair's norm.
    const y = (await got.array()) as number[][][][];
    const xs = (await x.array()) as number[][][][];
    expect(y[0]![1]![0]).toEqual(xs[0]![1]![0]);
    const norm = (v: number[], j: number) => Math.hypot(v[j]!, v[j + 4]!);
    expect(norm(y[1]![2]![3]!, 1)).toBeCloseTo(norm(xs[1]![2]![3]!, 1), 5);
    tf.dispose([cos, sin, x, w, got, want, g1, g2]);
  });
});
