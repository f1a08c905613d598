// The Node entry of @tensorflow/tfjs-core registers no gradients and no chained ops
// ("gradient function not found for Sum"). These two tfjs-core modules register them into the
// global registries. They are ESM with extensionless imports, which Node cannot load, so the
// build bundles them (see tsup.config.ts) and the tests let vitest transform them. Importing
// the 142 MB `@tensorflow/tfjs` umbrella would also work; this is ~370 KB.
// tfjs-core itself must load first: it creates the global engine and registers the flags the
// registrations below read.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';

/** True once the gradient registrations are in the global registry. */
export function gradientsRegistered(): boolean {
  return tf.getGradient('Sum') != null && tf.getGradient('Conv2D') != null;
}
