import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';

/** The PyTorch reference fixture written by bench/reference/ibq_reference.py. */
// biome-ignore lint/suspicious/noExplicitAny: JSON fixture
export const reference = JSON.parse(readFileSync(new URL('./fixtures/quantizer_reference.json', import.meta.url), 'utf8')) as any;

/** Element-wise closeness, relative to max(1, |expected|). */
export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]));
    if (!(Math.abs(actual[i] - expected[i]) <= tol * scale))
      throw new Error(`element ${i}: got ${actual[i]}, expected ${expected[i]} (tol ${tol})`);
  }
}

/** A variable made from `t`, which is disposed. */
export function asVariable(t: tf.Tensor): tf.Variable {
  const v = tf.variable(t);
  t.dispose();
  return v;
}
