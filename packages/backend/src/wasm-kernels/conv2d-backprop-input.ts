import * as tf from '@tensorflow/tfjs-core';
import { type ConvGradAttrs, convInfoFor, padOrCrop, zeroInsert } from './conv2d-geometry';

/**
 * Conv2DBackpropInput (conv input gradient, and the forward of conv2dTranspose). The stock wasm
 * kernel is a plain loop at ~3.5 GFLOP/s; this one runs on XNNPACK's conv.
 *
 * dx[b, y, x, ci] = sum of dy[b, oy, ox, co] * W[ky, kx, ci, co] over y = oy*s + ky - padTop: a
 * 'valid' conv of dy, zero-inserted by the stride and padded by (k - 1 - padTop) in front, with the
 * spatially flipped filter whose in/out channels are swapped.
 */
export function conv2dBackpropInput(args: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const dy = args.inputs['dy'] as tf.Tensor4D;
  const filter = args.inputs['filter'] as tf.Tensor4D;
  const attrs = args.attrs as unknown as ConvGradAttrs & { inputShape: [number, number, number, number] };
  const info = convInfoFor('Conv2DBackpropInput', attrs.inputShape, filter.shape, attrs);
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, padInfo } = info;
  const [, h, w] = attrs.inputShape;
  return tf.tidy(() => {
    const z = sh > 1 || sw > 1 ? zeroInsert(dy, sh, sw) : dy; // [B, oh*sh, ow*sw, co]
    const top = kh - 1 - padInfo.top;
    const left = kw - 1 - padInfo.left;
    // The padded map must have h + kh - 1 rows for a 'valid' conv to give h rows.
    const zp = padOrCrop(z, top, h + kh - 1 - top - z.shape[1], left, w + kw - 1 - left - z.shape[2]);
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D; // [kh, kw, co, ci]
    return tf.conv2d(zp, flipped, 1, 'valid');
  });
}
