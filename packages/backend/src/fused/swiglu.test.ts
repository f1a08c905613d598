// The fused SwiGLU kernels on cpu and wasm (with and without the native addon) against float64
// formulas written here, their gradients against central finite differences, and @ettjs/core's
// swiGlu against its tfjs-op form.
import { swiGlu } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingAddon, fusedKernelPaths, usePathAddon } from '../../test/native-paths';
import { expectClose, randn, runOn } from '../../test/reference';
import { initBackend } from '../init';
import { SWIGLU } from './swiglu';

const native = countingAddon(['swiglu']);
const PATHS = fusedKernelPaths(native.addon);

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  await tf.setBackend('cpu');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

const silu = (g: number) => g / (1 + Math.exp(-g));

describe.each(PATHS)('fused SwiGLU on $name', ({ backend, addon }) => {
  const wanted = usePathAddon(addon, native.calls, 'swiglu');

  // 5000 elements: more than one of the native kernel's 4096-element chunks.
  it.each([[[3, 7]], [[2, 2500]]])('forward and both gradients for %o, including both tails', async (shape: number[]) => {
    const n = shape.reduce((a, v) => a * v, 1);
    // Gates up to ±100 (σ saturates: silu is 0 or g, its derivative 0 or 1) among ordinary values.
    const g = Float32Array.from(randn(n, 1), (v, i) => (i % 11 === 0 ? (i % 2 ? 100 : -100) : 3 * v));
    const u = randn(n, 2);
    const wts = randn(n, 3);
    const [y, dg, du] = await runOn(backend, 'cpu', () => {
      const gt = tf.tensor(g, shape);
      const ut = tf.tensor(u, shape);
      const mask = tf.tensor(wts, shape);
      const f = (a: tf.Tensor, b: tf.Tensor) => tf.engine().runKernel(SWIGLU, { gate: a, up: b }, {}) as tf.Tensor;
      return [f(gt, ut), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), mask)))([gt, ut])];
    });
    if (wanted() != null) expect(native.calls.swiglu).toBe(3);
    expectClose(
      y!,
      Array.from(g, (v, i) => silu(v) * u[i]!),
      1e-5,
    );
    // L = Σ w · silu(g) · u: dL/du = w · silu(g); dL/dg by central differences of silu in float64.
    expectClose(
      du!,
      Array.from(g, (v, i) => wts[i]! * silu(v)),
      1e-5,
    );
    const h = 1e-5;
    expectClose(
      dg!,
      Array.from(g, (v, i) => (wts[i]! * u[i]! * (silu(v + h) - silu(v - h))) / (2 * h)),
      1e-4,
    );
    expect(Array.from(dg!).every(Number.isFinite)).toBe(true);
  });

  it('@ettjs/core swiGlu runs the kernel and equals its tfjs-op form; a gradient for gate alone leaves nothing behind', async () => {
    await tf.setBackend(backend);
    try {
      const g = tf.tensor(randn(64, 5), [8, 8]);
      const u = tf.tensor(randn(64, 6), [8, 8]);
      const [fused, ops] = tf.tidy(() => [swiGlu(g, u).dataSync(), tf.mul(tf.mul(g, tf.sigmoid(g)), u).dataSync()]);
      expectClose(fused, ops, 1e-6);
      if (wanted() != null) expect(native.calls.swiglu).toBe(1);
      const before = tf.memory().numTensors;
      const dg = tf.grad((a: tf.Tensor) => tf.sum(swiGlu(a, u)))(g);
      expect(tf.memory().numTensors).toBe(before + 1);
      tf.dispose([g, u, dg]);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('rejects mismatched shapes and non-float32 input', async () => {
    await tf.setBackend(backend);
    try {
      const a = tf.zeros([2, 6]);
      const b = tf.zeros([2, 5]);
      const i = tf.zeros([2, 6], 'int32');
      expect(() => tf.engine().runKernel(SWIGLU, { gate: a, up: b }, {})).toThrow(/gate \[2,6\] and up \[2,5\] must have one shape/);
      expect(() => tf.engine().runKernel(SWIGLU, { gate: a, up: i }, {})).toThrow(/float32 only, got int32/);
      expect(() => swiGlu(a, b)).toThrow(/swiGlu: gate \[2,6\] and up \[2,5\] must have one shape/);
      tf.dispose([a, b, i]);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});
