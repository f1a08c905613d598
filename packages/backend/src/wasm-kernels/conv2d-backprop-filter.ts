import * as tf from '@tensorflow/tfjs-core';
import { type ConvGradAttrs, convInfoFor, padOrCrop } from './conv2d-geometry';

/**
 * Conv2DBackpropFilter, which tfjs-backend-wasm 4.22 lacks (so no conv training at all; the cpu
 * kernel takes ~39 s for an 8x32x32x64->64 3x3 layer).
 *
 * dW[ky, kx, ci, co] = sum over b, oy, ox of xPadded[b, oy*s + ky, ox*s + kx, ci] * dy[b, oy, ox, co].
 * Swapping the roles of batch and channels turns this into one fast XNNPACK conv: the padded input
 * transposed to [ci, H', W', B] (batch = ci, channels = B), convolved 'valid' with dy transposed to a
 * [oh, ow, B, co] filter dilated by the stride, gives [ci, kh, kw, co].
 */
export function conv2dBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const x = args.inputs['x'] as tf.Tensor4D;
  const dy = args.inputs['dy'] as tf.Tensor4D;
  const attrs = args.attrs as unknown as ConvGradAttrs & { filterShape: [number, number, number, number] };
  const info = convInfoFor('Conv2DBackpropFilter', x.shape, attrs.filterShape, attrs);
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, outHeight: oh, outWidth: ow, padInfo } = info;
  return tf.tidy(() => {
    // Rows the windows read: exactly (oh-1)*sh + kh, so the conv below yields kh rows.
    const needH = (oh - 1) * sh + kh;
    const needW = (ow - 1) * sw + kw;
    const xp = padOrCrop(x, padInfo.top, needH - x.shape[1] - padInfo.top, padInfo.left, needW - x.shape[2] - padInfo.left);
    const xT = tf.transpose(xp, [3, 1, 2, 0]); // [ci, needH, needW, B]
    const dyT = tf.transpose(dy, [1, 2, 0, 3]); // [oh, ow, B, co]
    const r = tf.conv2d(xT, dyT as tf.Tensor4D, 1, 'valid', 'NHWC', [sh, sw]); // [ci, kh, kw, co]
    return tf.transpose(r, [1, 2, 0, 3]); // [kh, kw, ci, co]
  });
}
