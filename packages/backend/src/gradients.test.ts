// tfjs-core's gradients are registered, and Sum's and Mean's replacements (gradients.ts) give the
// exact values of tfjs-core's formula without building a host array of ones, on cpu and wasm.
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend } from './init';

await initBackend({ backend: 'wasm' });
afterAll(async () => {
  await tf.setBackend('cpu');
});

it('sum gradient works', () => {
  const g = tf.tidy(() =>
    tf
      .grad((x: tf.Tensor) => x.square().sum())(tf.tensor([1, 2, 3]))
      .arraySync(),
  );
  expect(g).toEqual([2, 4, 6]);
});

const SHAPE = [2, 3, 4];
const CASES: { axis: number | number[] | undefined; keepDims: boolean }[] = [
  { axis: undefined, keepDims: false },
  { axis: 0, keepDims: false },
  { axis: 1, keepDims: true },
  { axis: -1, keepDims: false },
  { axis: [0, 2], keepDims: true },
  { axis: [2, 0], keepDims: false },
];

describe.each(['cpu', 'wasm'])('Sum and Mean gradients on %s', (backend) => {
  it.each(CASES)('axis %o: w broadcast over the reduced axes (÷ n for Mean), exactly as tfjs-core computes it', async ({
    axis,
    keepDims,
  }) => {
    await tf.setBackend(backend);
    const n = SHAPE.reduce((a, b) => a * b, 1);
    const xv = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1));
    const axes = axis == null ? [0, 1, 2] : (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + 3 : a));
    const reduced = axes.reduce((p, a) => p * SHAPE[a]!, 1);
    const outShape = SHAPE.map((s, d) => (axes.includes(d) ? 1 : s));
    const w = Float32Array.from({ length: n / reduced }, (_, i) => 0.37 * (i + 1) - 1.1);
    for (const op of ['sum', 'mean'] as const) {
      // Spy on host-made tensors during the backward pass: only scalars (the divisor) may appear.
      const engine = tf.engine() as unknown as { makeTensor: (...a: unknown[]) => tf.Tensor };
      const make = engine.makeTensor;
      const madeSizes: number[] = [];
      const [got, stock] = tf.tidy(() => {
        const x = tf.tensor(xv, SHAPE);
        const wt = tf.tensor(w, keepDims ? outShape : outShape.filter((_, d) => !axes.includes(d)));
        const f = (t: tf.Tensor) => tf.sum(tf.mul(tf[op](t, axis, keepDims), wt));
        engine.makeTensor = (...a) => {
          madeSizes.push(tf.util.sizeFromShape(a[1] as number[]));
          return make.apply(engine, a);
        };
        let g: tf.Tensor;
        try {
          g = tf.grad(f)(x);
        } finally {
          engine.makeTensor = make;
        }
        // tfjs-core's formula: reshape(dy) · ones(x.shape) (then ÷ n for Mean); dy of sum(r·w) is w.
        const dy = tf.reshape(wt, outShape);
        const ref = tf.mul(dy, tf.ones(SHAPE));
        return [g.dataSync(), (op === 'mean' ? tf.div(ref, reduced) : ref).dataSync()];
      });
      expect(Array.from(got)).toEqual(Array.from(stock));
      expect(madeSizes.filter((s) => s > 1)).toEqual([]);
      // and the value: element i gets w at its reduced position (÷ n)
      const strides = [SHAPE[1]! * SHAPE[2]!, SHAPE[2]!, 1];
      const outStrides = [outShape[1]! * outShape[2]!, outShape[2]!, 1];
      for (let i = 0; i < n; i++) {
        const idx = strides.map((s, d) => Math.floor(i / s) % SHAPE[d]!);
        const o = idx.reduce((p, v, d) => p + (axes.includes(d) ? 0 : v) * outStrides[d]!, 0);
        expect(got[i]).toBeCloseTo(op === 'mean' ? w[o]! / reduced : w[o]!, 6);
      }
    }
  });
});
