import * as tf from '@tensorflow/tfjs-core';

/**
 * ResizeNearestNeighborGrad. The stock wasm kernel returns wrong values for batch > 1, and the cpu
 * kernel is wrong for batch > 1 too (checked by hand, MEASUREMENTS.md), so neither can be reused.
 *
 * Each output pixel copies one source pixel, so the gradient sums dy into its source. The map from
 * output to source pixel is taken from the forward kernel itself (run on a ramp image), so it
 * follows alignCorners / halfPixelCenters exactly; then one scatterND over (batch, source) pairs.
 */
export function resizeNearestNeighborGrad(args: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const images = args.inputs['images'] as tf.Tensor4D;
  const dy = args.inputs['dy'] as tf.Tensor4D;
  const { alignCorners, halfPixelCenters } = args.attrs as unknown as { alignCorners: boolean; halfPixelCenters: boolean };
  const [b, h, w, c] = images.shape;
  const [, oh, ow] = dy.shape;
  return tf.tidy(() => {
    const ramp = tf.reshape(tf.range(0, h * w, 1, 'float32'), [1, h, w, 1]) as tf.Tensor4D;
    const source = tf.reshape(tf.image.resizeNearestNeighbor(ramp, [oh, ow], alignCorners, halfPixelCenters), [1, oh * ow, 1]);
    const pixel = tf.broadcastTo(tf.cast(source, 'int32'), [b, oh * ow, 1]);
    const batch = tf.broadcastTo(tf.reshape(tf.range(0, b, 1, 'int32'), [b, 1, 1]), [b, oh * ow, 1]);
    const indices = tf.concat([batch, pixel], 2); // [B, oh*ow, 2]
    const summed = tf.scatterND(indices, tf.reshape(dy, [b, oh * ow, c]), [b, h * w, c]);
    return tf.reshape(summed, [b, h, w, c]);
  });
}
