import * as tf from '@tensorflow/tfjs-core';

/**
 * Pads rows/columns of an NHWC tensor where an amount is positive and crops where it is negative.
 * The gradient convolutions need both: e.g. the input gradient of a strided 'valid' conv whose last
 * rows were never read pads by a negative amount at the bottom.
 */
export function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const cropTop = Math.max(0, -top);
  const cropBottom = Math.max(0, -bottom);
  const cropLeft = Math.max(0, -left);
  const cropRight = Math.max(0, -right);
  let y = x;
  if (cropTop + cropBottom + cropLeft + cropRight > 0) {
    y = tf.slice(x, [0, cropTop, cropLeft, 0], [b, h - cropTop - cropBottom, w - cropLeft - cropRight, c]);
  }
  const padTop = Math.max(0, top);
  const padBottom = Math.max(0, bottom);
  const padLeft = Math.max(0, left);
  const padRight = Math.max(0, right);
  if (padTop + padBottom + padLeft + padRight > 0) {
    y = tf.pad(y, [
      [0, 0],
      [padTop, padBottom],
      [padLeft, padRight],
      [0, 0],
    ]);
  }
  return y;
}

/**
 * Inserts `sh - 1` zero rows after every row and `sw - 1` zero columns after every column:
 * [B, H, W, C] -> [B, H*sh, W*sw, C]. Done in rank-3 steps because wasm is slow (or lacks kernels)
 * for rank-6 pads.
 */
export function zeroInsert(x: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  let y: tf.Tensor = x;
  if (sw > 1) {
    y = tf.pad(tf.reshape(y, [b * h * w, 1, c]), [
      [0, 0],
      [0, sw - 1],
      [0, 0],
    ]); // [B*H*W, sw, C]
  }
  if (sh > 1) {
    y = tf.pad(tf.reshape(y, [b * h, 1, w * sw * c]), [
      [0, 0],
      [0, sh - 1],
      [0, 0],
    ]); // [B*H, sh, W*sw*C]
  }
  return tf.reshape(y, [b, h * sh, w * sw, c]);
}

/** The attributes both conv2d gradient kernels receive. */
export interface ConvGradAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export function convInfoFor(kernel: string, xShape: number[], filterShape: number[], attrs: ConvGradAttrs): tf.backend_util.Conv2DInfo {
  if (attrs.dataFormat !== 'NHWC') {
    throw new Error(
      `${kernel} on wasm: expected dataFormat 'NHWC', got '${attrs.dataFormat}'. The wasm backend only runs NHWC convolutions; transpose to NHWC first.`,
    );
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}
