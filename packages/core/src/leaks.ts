import * as tf from '@tensorflow/tfjs-core';

/** Thrown when code left tensors allocated that it should have freed. */
export class TensorLeakError extends Error {
  constructor(
    readonly leaked: number,
    label: string,
  ) {
    super(
      `${label}: ${leaked} tensor(s) leaked (tf.memory().numTensors grew by ${leaked}). Wrap the work in tf.tidy or dispose the results.`,
    );
    this.name = 'TensorLeakError';
  }
}

/**
 * Runs `fn` and throws `TensorLeakError` if the live tensor count grew. Tensors that `fn` returns
 * count as leaked: read them and dispose them inside `fn`, and return plain values.
 */
export async function assertNoLeaks<T>(fn: () => T | Promise<T>, label = 'assertNoLeaks'): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const leaked = tf.memory().numTensors - before;
  if (leaked !== 0) throw new TensorLeakError(leaked, label);
  return result;
}

/**
 * Calls `step` `n` times and returns the live tensor count after each call: a leak-free step gives
 * a flat list. Use it to prove a training step is leak-free.
 */
export async function tensorCountsOver(n: number, step: (i: number) => unknown | Promise<unknown>): Promise<number[]> {
  const counts: number[] = [];
  for (let i = 0; i < n; i++) {
    await step(i);
    counts.push(tf.memory().numTensors);
  }
  return counts;
}
