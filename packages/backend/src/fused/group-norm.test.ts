// The fused GroupNorm kernels on cpu and wasm against a naive float64 reference written here from
// the definition, and their gradients against central finite differences of that reference; the
// same for the webgpu backend's kernels.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClose, randn, runOn } from '../../test/reference';
import { initBackend } from '../init';
import { countingAddon, fusedKernelPaths, usePathAddon } from '../../test/native-paths';
import { GROUP_NORM, GROUP_NORM_GRAD } from './group-norm';

// Three paths: the cpu backend's JavaScript loops, wasm on the native addon (when this machine loads
// it; a counting wrapper fails the test if it silently ran the JavaScript), and wasm without it.
const native = countingAddon(['groupNorm']);
// And the webgpu backend's WGSL kernels (src/webgpu/group-norm.ts) where WebGPU starts: CI (Mesa
// llvmpipe) must have it, elsewhere the path is left out with a warning.
const gpu = await initBackend({ backend: 'webgpu' }).then(
  () => null,
  (e: Error) => e,
);
if (gpu != null && process.env['CI']) throw new Error(`WebGPU did not start: ${gpu.message}`);
if (gpu != null) console.warn(`GroupNorm on webgpu not tested: ${gpu.message}`);
const PATHS = [
  ...fusedKernelPaths(native.addon),
  ...(gpu == null ? [{ name: 'webgpu (WGSL)', backend: 'webgpu' as const, addon: () => null }] : []),
];

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  await tf.setBackend('cpu');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

interface Case {
  shape: [number, number, number, number];
  groups: number;
  activation: 'none' | 'silu';
}

/** y = act(((x − mean_g) / sqrt(var_g + eps)) · gamma + beta), in float64. */
function reference(c: Case, x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>, eps: number): Float64Array {
  const [b, h, w, ch] = c.shape;
  const cg = ch / c.groups;
  const y = new Float64Array(x.length);
  for (let s = 0; s < b; s++)
    for (let g = 0; g < c.groups; g++) {
      const idx: number[] = [];
      for (let p = 0; p < h * w; p++) for (let k = 0; k < cg; k++) idx.push((s * h * w + p) * ch + g * cg + k);
      const mean = idx.reduce((a, i) => a + x[i]!, 0) / idx.length;
      const variance = idx.reduce((a, i) => a + (x[i]! - mean) ** 2, 0) / idx.length;
      for (const i of idx) {
        const cc = i % ch;
        const u = ((x[i]! - mean) / Math.sqrt(variance + eps)) * gamma[cc]! + beta[cc]!;
        y[i] = c.activation === 'silu' ? u / (1 + Math.exp(-u)) : u;
      }
    }
  return y;
}

const CASES: Case[] = [
  { shape: [2, 3, 4, 8], groups: 2, activation: 'silu' },
  { shape: [2, 3, 4, 8], groups: 8, activation: 'none' },
  { shape: [1, 5, 5, 6], groups: 3, activation: 'silu' },
  { shape: [3, 2, 2, 4], groups: 1, activation: 'none' },
  // 90 pixels: the native kernel sums channels in float over blocks of 64 pixels, so one full block and a partial one.
  { shape: [2, 9, 10, 8], groups: 4, activation: 'silu' },
];
const EPS = 1e-6;

describe.each(PATHS)('fused GroupNorm on $name', ({ backend, addon }) => {
  const wanted = usePathAddon(addon, native.calls, 'groupNorm');

  it.each(CASES)('forward and all three gradients for $shape, $groups groups, $activation', async (c) => {
    const n = c.shape.reduce((a, v) => a * v, 1);
    const ch = c.shape[3];
    const x = Float32Array.from(randn(n, 1), (v) => 1.5 * v + 0.3);
    const gamma = Float32Array.from(randn(ch, 2), (v) => 1 + 0.5 * v);
    const beta = Float32Array.from(randn(ch, 3), (v) => 0.5 * v);
    const wts = randn(n, 4);
    const attrs = { groups: c.groups, eps: EPS, activation: c.activation };
    const [y, dx, dgamma, dbeta] = await runOn(backend, 'cpu', () => {
      const xt = tf.tensor4d(x, c.shape);
      const gt = tf.tensor1d(gamma);
      const bt = tf.tensor1d(beta);
      const wt = tf.tensor4d(wts, c.shape);
      const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        tf.engine().runKernel(GROUP_NORM, { x: a, gamma: g, beta: b }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
      const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, g, b), wt)))([xt, gt, bt]);
      return [f(xt, gt, bt), ...grads];
    });
    // On the native path the forward and the backward kernel both ran there (two forwards: grads and y).
    if (wanted() != null) expect(native.calls.groupNorm).toBe(3);
    expectClose(y!, reference(c, x, gamma, beta, EPS), 1e-5);
    // Central differences of the float64 reference: L = Σ w ⊙ y.
    const loss = (xx: ArrayLike<number>, gg: ArrayLike<number>, bb: ArrayLike<number>) =>
      reference(c, xx, gg, bb, EPS).reduce((a, v, i) => a + v * wts[i]!, 0);
    const fd = (which: 0 | 1 | 2, j: number) => {
      const h = 1e-5;
      const args = [Float64Array.from(x), Float64Array.from(gamma), Float64Array.from(beta)];
      args[which]![j]! += h;
      const up = loss(args[0]!, args[1]!, args[2]!);
      args[which]![j]! -= 2 * h;
      const down = loss(args[0]!, args[1]!, args[2]!);
      return (up - down) / (2 * h);
    };
    expectClose(
      dx!,
      Array.from({ length: n }, (_, j) => fd(0, j)),
      1e-4,
    );
    expectClose(
      dgamma!,
      Array.from({ length: ch }, (_, j) => fd(1, j)),
      1e-4,
    );
    expectClose(
      dbeta!,
      Array.from({ length: ch }, (_, j) => fd(2, j)),
      1e-4,
    );
  });

  it('SiLU far into both tails: |u| past 250 gives u·σ(u) and its derivative, finite', async () => {
    // gamma 200 on unit-variance x puts u = gamma·xhat + beta far past where exp over- or underflows
    // in float (|u| > 88): silu(u) is then 0 or u, its derivative 0 or 1.
    const shape = [1, 4, 16, 2];
    const n = 128;
    const x = Float32Array.from({ length: n }, (_, i) => ((i % 64) - 31.5) / 18.5);
    const gamma = Float32Array.from([200, 3]);
    const beta = Float32Array.from([0, -1]);
    const wts = randn(n, 9);
    const [y, dx] = await runOn(backend, 'cpu', () => {
      const xt = tf.tensor4d(x, shape as [number, number, number, number]);
      const f = (a: tf.Tensor) =>
        tf.engine().runKernel(GROUP_NORM, { x: a, gamma: tf.tensor1d(gamma), beta: tf.tensor1d(beta) }, {
          groups: 2,
          eps: EPS,
          activation: 'silu',
        } as unknown as tf.NamedAttrMap) as tf.Tensor;
      const wt = tf.tensor4d(wts, shape as [number, number, number, number]);
      return [f(xt), tf.grad((a: tf.Tensor) => tf.sum(tf.mul(f(a), wt)))(xt)];
    });
    const c = { shape, groups: 2, activation: 'silu' } as Case;
    const ref = reference(c, x, gamma, beta, EPS);
    expect(Math.max(...ref.map(Math.abs))).toBeGreaterThan(250);
    expectClose(y!, ref, 1e-5);
    const loss = (xx: ArrayLike<number>) => reference(c, xx, gamma, beta, EPS).reduce((a, v, i) => a + v * wts[i]!, 0);
    const fd = Array.from({ length: n }, (_, j) => {
      const h = 1e-6;
      const p = Float64Array.from(x);
      p[j]! += h;
      const up = loss(p);
      p[j]! -= 2 * h;
      return (up - loss(p)) / (2 * h);
    });
    expect(Array.from(dx!).every(Number.isFinite)).toBe(true);
    expectClose(dx!, fd, 1e-4);
  });

  it('a gradient for x alone leaves no tensors behind (the unused gamma/beta gradients are disposed)', async () => {
    await tf.setBackend(backend);
    try {
      const x = tf.randomNormal([2, 4, 4, 8]);
      const gamma = tf.ones([8]);
      const beta = tf.zeros([8]);
      const before = tf.memory().numTensors;
      const dx = tf.grad((a: tf.Tensor) =>
        tf.sum(tf.engine().runKernel(GROUP_NORM, { x: a, gamma, beta }, { groups: 2, eps: EPS, activation: 'silu' }) as tf.Tensor),
      )(x);
      expect(tf.memory().numTensors).toBe(before + 1);
      tf.dispose([x, gamma, beta, dx]);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('rejects shapes that do not fit', async () => {
    await tf.setBackend(backend);
    try {
      const x = tf.zeros([1, 2, 2, 6]);
      const g = tf.ones([6]);
      const bad = tf.ones([4]);
      expect(() => tf.engine().runKernel(GROUP_NORM, { x, gamma: g, beta: g }, { groups: 4, eps: EPS, activation: 'none' })).toThrow(
        /6 channels do not split into 4 groups/,
      );
      expect(() => tf.engine().runKernel(GROUP_NORM, { x, gamma: bad, beta: g }, { groups: 2, eps: EPS, activation: 'none' })).toThrow(
        /gamma and beta must be \[6\]/,
      );
      expect(tf.getKernel(GROUP_NORM_GRAD, backend)).toBeDefined();
      tf.dispose([x, g, bad]);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});
