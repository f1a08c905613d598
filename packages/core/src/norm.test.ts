import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { GROUP_NORM_KERNEL, groupNorm, groupNormalize } from './norm';

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

describe('groupNorm (affine + optional SiLU)', () => {
  const composite = (x: tf.Tensor4D, g: tf.Tensor1D, b: tf.Tensor1D, groups: number, silu: boolean) =>
    tf.tidy(() => {
      const y = tf.add(tf.mul(groupNormalize(x, groups, 1e-6), g), b);
      return silu ? tf.mul(y, tf.sigmoid(y)) : y;
    });
  const inputs = () =>
    [
      tf.randomNormal([2, 3, 3, 8], 0.2, 1.5, 'float32', 5),
      tf.randomNormal([8], 1, 0.3, 'float32', 6),
      tf.randomNormal([8], 0, 0.3, 'float32', 7),
    ] as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];

  it('the fused kernel (registered by @ettjs/backend, which the tests load) agrees with the tfjs-op composition, values and gradients', async () => {
    expect(tf.getKernel(GROUP_NORM_KERNEL, tf.getBackend())).toBeDefined();
    for (const silu of [false, true]) {
      const [x, g, b] = inputs();
      const w = tf.randomNormal([2, 3, 3, 8], 0, 1, 'float32', 8);
      const fused = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
        tf.sum(
          tf.mul(
            groupNorm(a as tf.Tensor4D, c as tf.Tensor1D, d as tf.Tensor1D, { groups: 2, eps: 1e-6, activation: silu ? 'silu' : 'none' }),
            w,
          ),
        ),
      )([x, g, b]);
      const plain = tf.grads((a: tf.Tensor, c: tf.Tensor, d: tf.Tensor) =>
        tf.sum(tf.mul(composite(a as tf.Tensor4D, c as tf.Tensor1D, d as tf.Tensor1D, 2, silu), w)),
      )([x, g, b]);
      const y1 = groupNorm(x, g, b, { groups: 2, eps: 1e-6, activation: silu ? 'silu' : 'none' });
      const y2 = composite(x, g, b, 2, silu);
      for (const [p, q] of [[y1, y2], ...fused.map((f, i) => [f, plain[i]!])] as [tf.Tensor, tf.Tensor][]) {
        const [pv, qv] = [await p.data(), await q.data()];
        for (let i = 0; i < pv.length; i++) expect(Math.abs(pv[i]! - qv[i]!)).toBeLessThan(2e-4 * Math.max(1, Math.abs(qv[i]!)));
      }
      tf.dispose([x, g, b, w, y1, y2, ...fused, ...plain]);
    }
  });

  it('falls back to the composition where the backend has no fused kernel, and checks its arguments', async () => {
    const config = tf.getKernel(GROUP_NORM_KERNEL, tf.getBackend())!;
    tf.unregisterKernel(GROUP_NORM_KERNEL, tf.getBackend());
    try {
      const [x, g, b] = inputs();
      const y = groupNorm(x, g, b, { groups: 4, eps: 1e-6, activation: 'silu' });
      const want = composite(x, g, b, 4, true);
      expect(Array.from(await y.data())).toEqual(Array.from(await want.data()));
      expect(() => groupNorm(x, g, b, { groups: 3, eps: 1e-6 })).toThrow(/8 channels do not split into 3 groups/);
      const short = tf.slice(b, 0, 4);
      expect(() => groupNorm(x, short, b, { groups: 2, eps: 1e-6 })).toThrow(/gamma and beta must be \[8\]/);
      short.dispose();
      tf.dispose([x, g, b, y, want]);
    } finally {
      tf.registerKernel(config);
    }
  });
});
