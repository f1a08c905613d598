import type * as tf from '@tensorflow/tfjs-core';
import { type CrossEntropyOptions, type CrossEntropyResult, maskedCrossEntropy } from './cross_entropy';

/**
 * Visual-code loss for generation post-training (stage 3b, [P §3.3]: next-token cross-entropy on
 * visual codes): logits of the visual head `[B, N, K]` against code indices `[B, N]` int32.
 * `codes[:, i]` must already be the target of `logits[:, i]` (the caller aligns them: the head
 * runs on the positions before each image slot). Positions with `ignoreIndex` or mask 0 get no loss.
 */
export function visualCodeLoss(logits: tf.Tensor3D, codes: tf.Tensor2D, options: CrossEntropyOptions = {}): CrossEntropyResult {
  return maskedCrossEntropy('visualCodeLoss', logits, codes, options);
}
