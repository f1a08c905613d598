import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { namedVariableGrads, stopGradient, straightThrough } from './autodiff';

async function arr(t: tf.Tensor): Promise<number[]> {
  const v = Array.from(await t.data());
  t.dispose();
  return v;
}

describe('stopGradient', () => {
  it('passes the value and blocks the gradient on its path only', async () => {
    const x = tf.tensor1d([1.5, -2, 3]);
    const y = tf.tidy(() => stopGradient(x));
    expect(await arr(y)).toEqual([1.5, -2, 3]);
    // d/dx sum(w · sg(x)) = 0
    const w = tf.tensor1d([2, 3, 4]);
    const g0 = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(w, stopGradient(a))))(x);
    expect(await arr(g0)).toEqual([0, 0, 0]);
    // d/dx sum(x · sg(x)) = sg(x) = x: only the unstopped factor contributes (2x without sg).
    const g1 = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(a, stopGradient(a))))(x);
    expect(await arr(g1)).toEqual([1.5, -2, 3]);
    tf.dispose([x, w]);
  });
});

describe('straightThrough', () => {
  it('forward is exactly `hard`, even where hard − soft + soft would round', async () => {
    const hard = tf.tensor1d([1e-8, 3, -0.1]);
    const soft = tf.tensor1d([1e8, 2.7, 5]);
    const naive = tf.tidy(() => tf.add(tf.sub(hard, soft), soft));
    expect((await arr(naive))[0]).not.toBe(Math.fround(1e-8));
    const st = tf.tidy(() => straightThrough(hard, soft));
    expect(await arr(st)).toEqual([1e-8, 3, -0.1].map(Math.fround));
    tf.dispose([hard, soft]);
  });

  it('the gradient w.r.t. soft is the upstream gradient at y = hard (finite differences), hard gets none', async () => {
    // loss(y) = Σ w·y² + Σ y, evaluated at y = st(hard, soft) = hard.
    const w = [0.5, -1.25, 2];
    const h = [0.75, -1.5, 0.25];
    const s = [0.1, 0.9, -3];
    const loss = (y: number[]) => y.reduce((acc, v, i) => acc + w[i] * v * v + v, 0);
    // Central differences of the downstream loss in float64, at y = hard.
    const eps = 1e-4;
    const fd = h.map((_, i) => {
      const up = [...h];
      const dn = [...h];
      up[i] += eps;
      dn[i] -= eps;
      return (loss(up) - loss(dn)) / (2 * eps);
    });
    const wt = tf.tensor1d(w);
    const hard = tf.tensor1d(h);
    const soft = tf.tensor1d(s);
    const [gHard, gSoft] = tf.grads((a: tf.Tensor, b: tf.Tensor) => {
      const y = straightThrough(a, b);
      return tf.add(tf.sum(tf.mul(wt, tf.square(y))), tf.sum(y));
    })([hard, soft]);
    const got = await arr(gSoft);
    for (let i = 0; i < 3; i++) expect(got[i]).toBeCloseTo(fd[i], 4);
    // Analytically 2·w·hard + 1, not 2·w·soft + 1: the gradient is taken at the forward value.
    expect(got[2]).toBeCloseTo(2 * w[2] * h[2] + 1, 5);
    expect(await arr(gHard)).toEqual([0, 0, 0]);
    // Linear case from the definition: d/dsoft Σ w·st(hard, soft) = w.
    const gLin = tf.grad((b: tf.Tensor) => tf.sum(tf.mul(wt, straightThrough(hard, b))))(soft);
    expect(await arr(gLin)).toEqual(w);
    tf.dispose([wt, hard, soft]);
  });

  it('rejects mismatched shapes', () => {
    const a = tf.zeros([2, 3]);
    const b = tf.zeros([3, 2]);
    expect(() => straightThrough(a, b)).toThrow(/hard \[2,3\] and soft \[3,2\] must have the same shape/);
    tf.dispose([a, b]);
  });
});

describe('namedVariableGrads', () => {
  it('keys gradients by parameter name and omits frozen and unreached parameters', async () => {
    const a = tf.tidy(() => tf.variable(tf.tensor1d([1, 2]), true));
    const b = tf.tidy(() => tf.variable(tf.tensor1d([3]), true));
    const frozen = tf.tidy(() => tf.variable(tf.tensor1d([5]), false));
    const unused = tf.tidy(() => tf.variable(tf.tensor1d([7]), true));
    // loss = Σ a² · b + frozen: d/da = 2a·b = [6, 12], d/db = Σ a² = 5.
    const { value, grads } = namedVariableGrads(
      () => tf.add(tf.mul(tf.sum(tf.square(a)), tf.sum(b)), tf.sum(frozen)) as tf.Scalar,
      [
        ['enc.a', a],
        ['enc.b', b],
        ['enc.frozen', frozen],
        ['enc.unused', unused],
      ],
    );
    expect(Object.keys(grads).sort()).toEqual(['enc.a', 'enc.b']);
    expect(await arr(value)).toEqual([20]);
    expect(await arr(grads['enc.a'])).toEqual([6, 12]);
    expect(await arr(grads['enc.b'])).toEqual([5]);
    expect(() => namedVariableGrads(() => tf.sum(frozen) as tf.Scalar, [['f', frozen]])).toThrow(
      /none of the 1 parameter\(s\) is trainable/,
    );
    tf.dispose([a, b, frozen, unused]);
  });
});
