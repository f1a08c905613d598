import * as tf from '@tensorflow/tfjs-core';
import { type CrossEntropyOptions, type CrossEntropyResult, maskedCrossEntropy } from './cross_entropy';

/** Options of `captionLoss`. */
export interface CaptionLossOptions extends CrossEntropyOptions {
  /**
   * When true, `labels` are aligned with the input ids (HF convention) and the loss compares
   * `logits[:, t]` with `labels[:, t + 1]`. When false, `labels[:, t]` is already the target of
   * `logits[:, t]`. Defaults to true.
   */
  shift?: boolean;
}

/**
 * Caption loss L_cap [P Eq. 2]: next-token cross-entropy on text tokens only. Image positions,
 * the prompt and padding carry `ignoreIndex` (or a 0 in `mask`) and get no loss; the mean is over
 * supervised tokens. Returns the token accuracy and count too.
 *
 * logits `[B, T, V]`, labels `[B, T]` int32.
 */
export function captionLoss(logits: tf.Tensor3D, labels: tf.Tensor2D, options: CaptionLossOptions = {}): CrossEntropyResult {
  if (options.shift ?? true) {
    if (logits.rank !== 3 || labels.rank !== 2 || logits.shape[1] !== labels.shape[1]) {
      throw new Error(`captionLoss: logits [B, T, V] and labels [B, T] must share T, got [${logits.shape}] and [${labels.shape}]`);
    }
    const T = logits.shape[1];
    if (T < 2) throw new Error(`captionLoss: shift needs at least 2 positions, got T = ${T}`);
    return tf.tidy(() => {
      const [B, , V] = logits.shape;
      const l = tf.slice(logits, [0, 0, 0], [B, T - 1, V]); // position t predicts token t + 1
      const y = tf.slice(labels, [0, 1], [B, T - 1]);
      const mask = options.mask ? tf.slice(options.mask, [0, 1], [B, T - 1]) : undefined;
      return maskedCrossEntropy('captionLoss', l, y, { ...options, mask });
    });
  }
  return maskedCrossEntropy('captionLoss', logits, labels, options);
}
