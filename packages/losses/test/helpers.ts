import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';

// biome-ignore lint/suspicious/noExplicitAny: the fixture is plain JSON written by bench/reference/losses.py
export const reference: any = JSON.parse(readFileSync(new URL('./fixtures/losses_reference.json', import.meta.url), 'utf8'));

/** Reads a tensor's values (outside tidy) and disposes it. */
export async function take(t: tf.Tensor): Promise<number[]> {
  const v = Array.from(await t.data());
  t.dispose();
  return v;
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol = 0): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const tol = atol + rtol * Math.abs(expected[i]);
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
      throw new Error(`element ${i}: got ${actual[i]}, expected ${expected[i]} (tolerance ${tol})`);
    }
  }
}

/** NCHW → NHWC for PyTorch conv weights: `[out, in, k, k]` → `[k, k, in, out]`. */
export function torchConvWeight(w: number[][][][]): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(tf.tensor4d(w), [2, 3, 1, 0]));
}

/**
 * Central finite differences of a scalar function at `x`, float32, for `coords` flat positions:
 * returns [analytic, numeric] pairs.
 */
export async function finiteDifferences(
  f: (x: tf.Tensor) => tf.Scalar,
  x: tf.Tensor,
  coords: number[],
  eps = 1e-2,
): Promise<{ analytic: number[]; numeric: number[] }> {
  const grad = await take(tf.tidy(() => tf.grad(f)(x)));
  const base = Array.from(await x.data());
  const numeric: number[] = [];
  for (const i of coords) {
    const at = async (delta: number) => {
      const v = base.slice();
      v[i] += delta;
      return (await take(tf.tidy(() => f(tf.tensor(v, x.shape)))))[0];
    };
    numeric.push(((await at(eps)) - (await at(-eps))) / (2 * eps));
  }
  return { analytic: coords.map((i) => grad[i]), numeric };
}
