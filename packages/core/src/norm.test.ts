import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { groupNormalize } from './norm';

/** float64 group norm written from the definition (NHWC, population variance). */
function reference(x: Float32Array, [b, h, w, c]: number[], groups: number, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  const cg = c / groups;
  for (let n = 0; n < b; n++)
    for (let g = 0; g < groups; g++) {
      const idx: number[] = [];
      for (let p = 0; p < h * w; p++) for (let k = 0; k < cg; k++) idx.push((n * h * w + p) * c + g * cg + k);
      const mean = idx.reduce((s, i) => s + x[i]!, 0) / idx.length;
      const variance = idx.reduce((s, i) => s + (x[i]! - mean) ** 2, 0) / idx.length;
      for (const i of idx) out[i] = (x[i]! - mean) / Math.sqrt(variance + eps);
    }
  return out;
}

describe('groupNormalize', () => {
  it('matches a float64 reference for 1, 2 and C groups', async () => {
    const shape = [2, 3, 4, 6];
    const x = tf.randomNormal(shape, 0.5, 2, 'float32', 3);
    const values = (await x.data()) as Float32Array;
    for (const groups of [1, 2, 6]) {
      const y = groupNormalize(x as tf.Tensor4D, groups, 1e-5);
      const ref = reference(values, shape, groups, 1e-5);
      const got = await y.data();
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i]! - ref[i]!), `groups ${groups} [${i}]`).toBeLessThan(2e-5);
      y.dispose();
    }
    x.dispose();
  });

  it('has the gradient of central finite differences (float64 reference, random upstream gradient)', async () => {
    const shape = [2, 2, 3, 4];
    const x = tf.randomNormal(shape, 0, 1, 'float32', 5);
    const dy = tf.randomNormal(shape, 0, 1, 'float32', 6);
    const xv = Float32Array.from(await x.data());
    const dyv = await dy.data();
    const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(groupNormalize(t as tf.Tensor4D, 2, 1e-3), dy)))(x);
    const got = await dx.data();
    const loss = (v: Float32Array) => reference(v, shape, 2, 1e-3).reduce((s, y, i) => s + y * dyv[i]!, 0);
    const h = 1e-3;
    for (let i = 0; i < xv.length; i++) {
      const plus = Float32Array.from(xv);
      const minus = Float32Array.from(xv);
      plus[i]! += h;
      minus[i]! -= h;
      const fd = (loss(plus) - loss(minus)) / (2 * h);
      expect(Math.abs(got[i]! - fd), `dx[${i}]`).toBeLessThan(2e-3 * (1 + Math.abs(fd)));
    }
    tf.dispose([x, dy, dx]);
  });

  it('rejects a group count that does not divide the channels', () => {
    const x = tf.zeros([1, 2, 2, 6]) as tf.Tensor4D;
    expect(() => groupNormalize(x, 4, 1e-5)).toThrow(/6 channels do not split into 4 groups/);
    x.dispose();
  });
});
