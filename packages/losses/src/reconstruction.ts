import * as tf from '@tensorflow/tfjs-core';

function checkPair(op: string, x: tf.Tensor, y: tf.Tensor): void {
  if (!tf.util.arraysEqual(x.shape, y.shape)) {
    throw new Error(`${op}: inputs must have the same shape, got [${x.shape}] and [${y.shape}]`);
  }
}

/** L_rec of the paper: mean |x − x̂| over every element [IBQ vqperceptual.py, `pixelloss_weight` 1.0]. */
export function l1Loss(x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  checkPair('l1Loss', x, y);
  return tf.tidy(() => tf.mean(tf.abs(tf.sub(x, y))) as tf.Scalar);
}

/** Mean squared error over every element (an alternative reconstruction term; not the paper's). */
export function l2Loss(x: tf.Tensor, y: tf.Tensor): tf.Scalar {
  checkPair('l2Loss', x, y);
  return tf.tidy(() => tf.mean(tf.squaredDifference(x, y)) as tf.Scalar);
}

/** Options of `psnr`. */
export interface PsnrOptions {
  /** Peak-to-peak range of the pixel values. Defaults to 2 (images in [-1, 1], DESIGN.md). */
  dataRange?: number;
  /** `'mean'` averages the per-image PSNR over the batch; `'none'` returns `[B]`. Defaults to `'mean'`. */
  reduction?: 'mean' | 'none';
}

/**
 * Peak signal-to-noise ratio in dB, a metric (no loss): per image `10·log10(R² / mse)` over
 * `[H, W, C]`, then averaged over the batch (the usual convention; the mean of per-image PSNR, not
 * the PSNR of the batch MSE). Identical images give +Infinity.
 */
export function psnr(x: tf.Tensor4D, y: tf.Tensor4D, options: PsnrOptions = {}): tf.Tensor {
  checkPair('psnr', x, y);
  if (x.rank !== 4) throw new Error(`psnr: images must be [B, H, W, C], got [${x.shape}]`);
  const range = options.dataRange ?? 2;
  if (!(range > 0)) throw new Error(`psnr: dataRange must be > 0, got ${range}`);
  return tf.tidy(() => {
    const mse = tf.mean(tf.squaredDifference(x, y), [1, 2, 3]); // [B]
    const db = tf.mul(tf.div(tf.log(tf.div(tf.scalar(range * range), mse)), Math.log(10)), 10); // [B]
    return options.reduction === 'none' ? db : tf.mean(db);
  });
}
