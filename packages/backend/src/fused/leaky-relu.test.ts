// LeakyReLU on cpu and wasm (with and without the native addon): the forward against its definition,
// the one-kernel gradient against the definition, against tfjs-core's own composition
// (where(x > 0, dy, α·dy)) and against central finite differences, its second derivative, and the
// stock composition where a backend lacks the kernel.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingAddon, fusedKernelPaths, usePathAddon } from '../../test/native-paths';
import { expectClose, randn, runOn } from '../../test/reference';
import { initBackend } from '../init';
import { LEAKY_RELU_GRAD } from './leaky-relu';

const native = countingAddon(['leakyRelu']);
const PATHS = fusedKernelPaths(native.addon);

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  await tf.setBackend('cpu');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

const ALPHA = 0.2;

/** x with zeros, ±0, NaN and large values among ordinary ones. */
function inputs(n: number): Float32Array {
  const x = randn(n, 11);
  for (let i = 0; i < n; i += 97) x[i] = 0;
  for (let i = 13; i < n; i += 211) x[i] = -0;
  for (let i = 29; i < n; i += 401) x[i] = Number.NaN;
  for (let i = 41; i < n; i += 89) x[i] = (i % 2 ? 1 : -1) * 3e38;
  return x;
}

describe.each(PATHS)('LeakyReLU on $name', ({ backend, addon }) => {
  const wanted = usePathAddon(addon, native.calls, 'leakyRelu');

  // 40 000 elements: the native kernel splits them over its threads.
  it.each([
    [[3, 7]],
    [[8, 50, 100]],
  ])('forward and gradient for %o match the definition (x = 0, -0 and NaN take the α branch)', async (shape: number[]) => {
    const n = shape.reduce((a, v) => a * v, 1);
    const x = inputs(n);
    const dy = randn(n, 12);
    const [y, dx] = await runOn(backend, 'cpu', () => {
      const xt = tf.tensor(x, shape);
      const w = tf.tensor(dy, shape);
      return [tf.leakyRelu(xt, ALPHA), tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.leakyRelu(t, ALPHA), w)))(xt)];
    });
    // On wasm with the addon: the forward twice (once inside the gradient's forward) and the gradient once.
    if (wanted() != null && backend === 'wasm') expect(native.calls.leakyRelu).toBe(3);
    const a = Math.fround(ALPHA);
    // The forward on cpu is tfjs's own kernel, which multiplies by α in double; wasm's (stock and
    // native) by α as a float, as every gradient path here does.
    const wantY = Array.from(x, (v) => (v < 0 ? Math.fround((backend === 'cpu' ? ALPHA : a) * v) : v));
    const wantDx = Array.from(x, (v, i) => (v > 0 ? dy[i]! : Math.fround(a * dy[i]!)));
    expect(Array.from(y!)).toEqual(wantY);
    expect(Array.from(dx!)).toEqual(wantDx);
  });

  it("equals tfjs-core's gradient composition and central differences", async () => {
    const shape = [4, 9, 6];
    const n = 4 * 9 * 6;
    // Away from 0, where the derivative jumps.
    const x = Float32Array.from(randn(n, 21), (v) => (Math.abs(v) < 0.05 ? v + Math.sign(v || 1) * 0.1 : v));
    const dy = randn(n, 22);
    const [fused, stock] = await runOn(backend, 'cpu', () => {
      const xt = tf.tensor(x, shape);
      const w = tf.tensor(dy, shape);
      return [tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.leakyRelu(t, ALPHA), w)))(xt), tf.where(tf.greater(xt, 0), w, tf.mul(w, ALPHA))];
    });
    expect(Array.from(fused!)).toEqual(Array.from(stock!));
    const h = 1e-3;
    const f = (v: number) => (v < 0 ? ALPHA * v : v);
    expectClose(
      fused!,
      Array.from(x, (v, i) => (dy[i]! * (f(v + h) - f(v - h))) / (2 * h)),
      1e-5,
    );
  });

  it('has a second derivative: the gradient is linear in dy with x as its mask', async () => {
    const x = Float32Array.from([-2, -0.5, 0.5, 3, -1, 2]);
    const dy = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const v = Float32Array.from([0.5, -1, 2, 1, -3, 0.25]);
    const [gDy, gX] = await runOn(backend, 'cpu', () => {
      const xt = tf.tensor1d(x);
      const vt = tf.tensor1d(v);
      // d/d(dy) of Σ v · dx(dy, x) = v masked as dx is: v where x > 0, α·v elsewhere; d/dx is 0.
      const inner = (d: tf.Tensor, t: tf.Tensor) =>
        tf.sum(tf.mul(tf.engine().runKernel(LEAKY_RELU_GRAD, { dy: d, x: t }, { alpha: ALPHA }) as tf.Tensor, vt));
      return tf.grads(inner)([tf.tensor1d(dy), xt]);
    });
    expectClose(
      gDy!,
      Array.from(x, (t, i) => (t > 0 ? v[i]! : ALPHA * v[i]!)),
      1e-7,
    );
    expect(Array.from(gX!)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('rejects mismatched shapes and non-float32 input, and leaks nothing', async () => {
    await tf.setBackend(backend);
    try {
      const a = tf.zeros([2, 6]);
      const b = tf.zeros([2, 5]);
      const i = tf.zeros([2, 6], 'int32');
      expect(() => tf.engine().runKernel(LEAKY_RELU_GRAD, { dy: a, x: b }, { alpha: ALPHA })).toThrow(
        /dy \[2,6\] and x \[2,5\] must have one shape/,
      );
      expect(() => tf.engine().runKernel(LEAKY_RELU_GRAD, { dy: a, x: i }, { alpha: ALPHA })).toThrow(/float32 only, got int32/);
      const before = tf.memory().numTensors;
      for (let k = 0; k < 3; k++) tf.dispose(tf.grad((t: tf.Tensor) => tf.sum(tf.leakyRelu(t, ALPHA)))(a));
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([a, b, i]);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});

describe('LeakyReLU gradient where the backend has no fused kernel', () => {
  it("falls back to tfjs-core's composition (int32 dy is not the kernel's: same values)", async () => {
    // A backend without the kernel: unregister it on cpu for this test.
    const config = tf.getKernel(LEAKY_RELU_GRAD, 'cpu')!;
    tf.unregisterKernel(LEAKY_RELU_GRAD, 'cpu');
    try {
      const x = tf.tensor1d([-2, 0, 1.5, -0.25]);
      const w = tf.tensor1d([1, 2, 3, 4]);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.leakyRelu(t, ALPHA), w)))(x);
      expectClose(await g.data(), [ALPHA * 1, ALPHA * 2, 3, ALPHA * 4], 1e-7);
      tf.dispose([x, w, g]);
    } finally {
      tf.registerKernel(config);
    }
  });
});
