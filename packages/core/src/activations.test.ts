// rmsNorm and swiGlu: the fused kernels @ettjs/backend registers (the tests load it) and the tfjs-op
// fallback where a backend has none, both against float64 values computed here, gradients included.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { SWIGLU_KERNEL, swiGlu } from './activations';
import { RMS_NORM_KERNEL, rmsNorm } from './norm';

/** Runs `f` with `kernel` unregistered from the active backend (the fallback), then puts it back. */
function withoutKernel<T>(kernel: string, f: () => T): T {
  const config = tf.getKernel(kernel, tf.getBackend())!;
  tf.unregisterKernel(kernel, tf.getBackend());
  try {
    return f();
  } finally {
    tf.registerKernel(config);
  }
}

const X = [0.5, -1.25, 2, 3, 0.75, -0.5];
const W = [1.5, -0.5, 2];

describe.each([
  ['the fused kernel', <T>(_: string, f: () => T) => f()],
  ['the tfjs-op fallback', withoutKernel],
])('%s', (_, run) => {
  it('rmsNorm: w · x / sqrt(mean(x²) + eps) per row, and dL/dw for L = Σ y', () => {
    const eps = 1e-5;
    const [y, dw] = run(RMS_NORM_KERNEL, () =>
      tf.tidy(() => {
        const x = tf.tensor2d(X, [2, 3]);
        const w = tf.tensor1d(W);
        const out = rmsNorm(x, w, eps);
        return [
          out.dataSync(),
          tf
            .grad((v: tf.Tensor) => tf.sum(rmsNorm(x, v as tf.Tensor1D, eps)))(w)
            .dataSync(),
        ];
      }),
    );
    const rs = [0, 1].map((r) => 1 / Math.sqrt(X.slice(3 * r, 3 * r + 3).reduce((a, v) => a + v * v, 0) / 3 + eps));
    for (const [i, v] of X.entries()) expect(y![i]).toBeCloseTo(v * rs[Math.floor(i / 3)]! * W[i % 3]!, 5);
    for (const j of W.keys()) expect(dw![j]).toBeCloseTo(X[j]! * rs[0]! + X[3 + j]! * rs[1]!, 5);
  });

  it('swiGlu: g · σ(g) · u, and dL/dg = u · σ(g) · (1 + g · (1 − σ(g))) for L = Σ y', () => {
    const u = [2, -1, 0.5, 1, 3, -2];
    const [y, dg] = run(SWIGLU_KERNEL, () =>
      tf.tidy(() => {
        const g = tf.tensor1d(X);
        const up = tf.tensor1d(u);
        return [
          swiGlu(g, up).dataSync(),
          tf
            .grad((v: tf.Tensor) => tf.sum(swiGlu(v, up)))(g)
            .dataSync(),
        ];
      }),
    );
    X.forEach((g, i) => {
      const s = 1 / (1 + Math.exp(-g));
      expect(y![i]).toBeCloseTo(g * s * u[i]!, 5);
      expect(dg![i]).toBeCloseTo(u[i]! * s * (1 + g * (1 - s)), 5);
    });
  });
});

it('the fused kernels are there on the test backend (else the block above tested the fallback twice)', () => {
  expect(tf.getKernel(RMS_NORM_KERNEL, tf.getBackend())).toBeDefined();
  expect(tf.getKernel(SWIGLU_KERNEL, tf.getBackend())).toBeDefined();
});
