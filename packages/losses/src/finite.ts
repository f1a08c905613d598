import type * as tf from '@tensorflow/tfjs-core';
import { LossComponentError } from './errors';

/**
 * Throws `LossComponentError` naming the first component that is NaN or infinite. It reads the
 * values (one `data()` per scalar), so call it after the step, outside any taped function: a
 * synchronous read inside `tf.variableGrads` would stall the step and cannot throw cleanly.
 * Returns the values as plain numbers, ready for the metrics log. Does not dispose anything.
 */
export async function assertFinite(components: Record<string, tf.Scalar>, step?: number): Promise<Record<string, number>> {
  const names = Object.keys(components);
  const values = await Promise.all(names.map(async (n) => (await components[n].data())[0]));
  const out: Record<string, number> = {};
  names.forEach((n, i) => {
    if (!Number.isFinite(values[i])) throw new LossComponentError(n, values[i], step);
    out[n] = values[i];
  });
  return out;
}
