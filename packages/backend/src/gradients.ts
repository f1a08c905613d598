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

/** `dy` of a reduction of `x` over `axis`, reshaped with ones at the reduced axes (broadcasts against x). */
function expandReduced(dy: tf.Tensor, x: tf.Tensor, axis: number | number[]): { expanded: tf.Tensor; reduced: number } {
  const axes = tf.util.parseAxisParam(axis, x.shape);
  const shape = x.shape.slice();
  for (const a of axes) shape[a] = 1;
  return { expanded: tf.reshape(dy, shape), reduced: axes.reduce((n, a) => n * x.shape[a]!, 1) };
}

// Sum's and Mean's gradients broadcast dy over the reduced axes. tfjs-core does that by multiplying
// with `ones(x.shape)`, a JavaScript array as large as x, filled and copied into the backend on every
// backward pass (a stage-2 ETT step made ~50 of them, up to 110 000 floats each, between kernels).
// These are the same products, bit for bit, with the ones made by the backend's Fill kernel; Mean
// divides the small dy by the count before the broadcast instead of the broadcast result after it
// (dy·1/n and (dy/n)·1 are the same float).
tf.registerGradient({
  kernelName: tf.Sum,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const x = saved[0]!;
    return {
      x: () => tf.mul(expandReduced(dy as tf.Tensor, x, (attrs as unknown as tf.SumAttrs).axis).expanded, tf.fill(x.shape, 1, 'float32')),
    };
  },
});
tf.registerGradient({
  kernelName: tf.Mean,
  inputsToSave: ['x'],
  gradFunc: (dy, saved, attrs) => {
    const x = saved[0]!;
    return {
      x: () => {
        const { expanded, reduced } = expandReduced(dy as tf.Tensor, x, (attrs as unknown as tf.MeanAttrs).axis);
        return tf.mul(tf.div(expanded, reduced), tf.fill(x.shape, 1, 'float32'));
      },
    };
  },
});
