import * as tf from '@tensorflow/tfjs-core';

/**
 * UnsortedSegmentSum, which tfjs-backend-wasm 4.22 lacks: it is the gradient of `gather` with
 * respect to the table, so without it no embedding trains on wasm. One scatterND (which sums
 * duplicate indices). Ids outside [0, numSegments) are dropped, as in TensorFlow.
 */
export function unsortedSegmentSum(args: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const x = args.inputs['x'] as tf.Tensor;
  const segmentIds = args.inputs['segmentIds'] as tf.Tensor;
  const numSegments = (args.attrs as unknown as { numSegments: number }).numSegments;
  const n = segmentIds.size;
  const rest = x.shape.slice(segmentIds.rank);
  const d = tf.util.sizeFromShape(rest);
  if (!tf.util.arraysEqual(x.shape.slice(0, segmentIds.rank), segmentIds.shape)) {
    throw new Error(`UnsortedSegmentSum on wasm: segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}].`);
  }
  return tf.tidy(() => {
    const ids = tf.reshape(tf.cast(segmentIds, 'int32'), [n, 1]);
    const valid = tf.logicalAnd(tf.greaterEqual(ids, 0), tf.less(ids, numSegments)); // [n, 1]
    const x2 = tf.reshape(x, [n, d]);
    const kept = tf.where(tf.broadcastTo(valid, [n, d]), x2, tf.zerosLike(x2));
    const summed = tf.scatterND(tf.clipByValue(ids, 0, Math.max(0, numSegments - 1)), kept, [numSegments, d]);
    return tf.reshape(summed, [numSegments, ...rest]);
  });
}
