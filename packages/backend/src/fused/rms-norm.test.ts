// The fused RMSNorm kernels on cpu and wasm (with and without the native addon) against a float64
// reference written here from LLaMA's definition, their gradients against central finite
// differences of that reference, and @ettjs/core's rmsNorm against its tfjs-op form.
import { rmsNorm } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countingAddon, fusedKernelPaths, usePathAddon } from '../../test/native-paths';
import { expectClose, randn, runOn } from '../../test/reference';
import { initBackend } from '../init';
import { RMS_NORM } from './rms-norm';

const native = countingAddon(['rmsNorm']);
const PATHS = fusedKernelPaths(native.addon);

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  await tf.setBackend('cpu');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

/** y = w · x / sqrt(mean(x²) + eps) over the last axis of [rows, c], in float64. */
function reference(x: ArrayLike<number>, w: ArrayLike<number>, c: number, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let base = 0; base < x.length; base += c) {
    let sq = 0;
    for (let j = 0; j < c; j++) sq += x[base + j]! ** 2;
    const rs = 1 / Math.sqrt(sq / c + eps);
    for (let j = 0; j < c; j++) y[base + j] = x[base + j]! * rs * w[j]!;
  }
  return y;
}

// 37 columns: the native kernel's vector loops and their scalar tails; 128 the LM's hidden size.
const SHAPES = [
  [3, 37],
  [2, 5, 16],
  [4, 128],
  [1, 3],
];
const EPS = 1e-6;

describe.each(PATHS)('fused RMSNorm on $name', ({ backend, addon }) => {
  const wanted = usePathAddon(addon, native.calls, 'rmsNorm');

  it.each(SHAPES)('forward and both gradients for %o', async (...shape: number[]) => {
    const n = shape.reduce((a, v) => a * v, 1);
    const c = shape.at(-1)!;
    const x = Float32Array.from(randn(n, 1), (v) => 1.5 * v + 0.3);
    const w = Float32Array.from(randn(c, 2), (v) => 1 + 0.5 * v);
    const wts = randn(n, 4);
    const [y, dx, dw] = await runOn(backend, 'cpu', () => {
      const xt = tf.tensor(x, shape);
      const wt = tf.tensor1d(w);
      const mask = tf.tensor(wts, shape);
      const f = (a: tf.Tensor, b: tf.Tensor) => tf.engine().runKernel(RMS_NORM, { x: a, weight: b }, { eps: EPS }) as tf.Tensor;
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), mask)))([xt, wt]);
      return [f(xt, wt), ...grads];
    });
    // On the native path the forward and the backward kernel both ran there (two forwards: grads and y).
    if (wanted() != null) expect(native.calls.rmsNorm).toBe(3);
    expectClose(y!, reference(x, w, c, EPS), 1e-5);
    const loss = (xx: ArrayLike<number>, ww: ArrayLike<number>) => reference(xx, ww, c, EPS).reduce((a, v, i) => a + v * wts[i]!, 0);
    const fd = (which: 0 | 1, j: number) => {
      const h = 1e-5;
      const args = [Float64Array.from(x), Float64Array.from(w)];
      args[which]![j]! += h;
      const up = loss(args[0]!, args[1]!);
      args[which]![j]! -= 2 * h;
      return (up - loss(args[0]!, args[1]!)) / (2 * h);
    };
    expectClose(
      dx!,
      Array.from({ length: n }, (_, j) => fd(0, j)),
      1e-4,
    );
    expectClose(
      dw!,
      Array.from({ length: c }, (_, j) => fd(1, j)),
      1e-4,
    );
  });

  it('@ettjs/core rmsNorm runs the kernel and equals its tfjs-op form; gradients for x alone leave nothing behind', async () => {
    await tf.setBackend(backend);
    try {
      const x = tf.tensor(randn(2 * 3 * 24, 5), [2, 3, 24]);
      const w = tf.tensor1d(Float32Array.from(randn(24, 6), (v) => 1 + v));
      const [fused, ops] = tf.tidy(() => {
        const composed = tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), EPS))), w);
        return [rmsNorm(x, w, EPS).dataSync(), composed.dataSync()];
      });
      expectClose(fused, ops, 1e-6);
      if (wanted() != null) expect(native.calls.rmsNorm).toBe(1);
      const before = tf.memory().numTensors;
      const dx = tf.grad((a: tf.Tensor) => tf.sum(rmsNorm(a, w, EPS)))(x);
      expect(tf.memory().numTensors).toBe(before + 1);
      tf.dispose([x, w, dx]);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('rejects a weight that does not fit and non-float32 input', async () => {
    await tf.setBackend(backend);
    try {
      const x = tf.zeros([2, 6]);
      const bad = tf.ones([4]);
      const xi = tf.zeros([2, 4], 'int32');
      const ok = tf.ones([6]);
      expect(() => tf.engine().runKernel(RMS_NORM, { x, weight: bad }, { eps: EPS })).toThrow(
        /weight must be \[C\] for x \[\.\.\., C\], got x \[2,6\] and weight \[4\]/,
      );
      expect(() => tf.engine().runKernel(RMS_NORM, { x: xi, weight: bad }, { eps: EPS })).toThrow(/float32 only, got int32/);
      expect(() => rmsNorm(x, bad as tf.Tensor1D, EPS)).toThrow(/rmsNorm: weight must be \[6\] for x \[2,6\], got \[4\]/);
      expect(() => rmsNorm(x, ok as tf.Tensor1D, -1)).toThrow(/eps must be >= 0/);
      tf.dispose([x, bad, xi, ok]);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});
