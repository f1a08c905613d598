import * as tf from '@tensorflow/tfjs-core';
import { untaped } from '@ettjs/core';

/**
 * Default bound on the elements of one `[rows, K]` logits block (2^22 floats = 16 MiB). A dense
 * `[N, K]` block at the paper's N = 1024 tokens and K = 131 072 codes is 512 MiB per copy, and a
 * softmax with its gradient needs several copies; blocks of `floor(2^22 / K)` rows keep each
 * temporary at 16 MiB (256 rows at K = 16 384).
 */
export const DEFAULT_MAX_BLOCK_ELEMENTS = 1 << 22;

/** Rows per logits block so that a `[rows, K]` block holds at most `maxElements` floats. */
export function rowsPerBlock(codebookSize: number, maxElements: number): number {
  return Math.max(1, Math.floor(maxElements / codebookSize));
}

/** Calls `fn(start, rows)` over `[0, n)` in blocks of at most `block` rows. */
export function forEachBlock(n: number, block: number, fn: (start: number, rows: number) => void): void {
  for (let start = 0; start < n; start += block) fn(start, Math.min(block, n - start));
}

/**
 * Index of the best code per row, `argmax_k (z·E_kᵀ + bias_k)`, computed in row blocks and
 * off the gradient tape (see `untaped`). With `bias_k = −½‖E_k‖²` this is the nearest code in L2
 * (‖z − e‖² = ‖z‖² − 2 z·e + ‖e‖², and ‖z‖² does not change the argmin). Returns int32 `[N]`.
 */
export function bestCodes(z: tf.Tensor2D, codebook: tf.Tensor2D, options: { bias?: tf.Tensor1D; maxBlockElements: number }): tf.Tensor1D {
  return untaped(() => {
    const [n] = z.shape;
    const block = rowsPerBlock(codebook.shape[0], options.maxBlockElements);
    const parts: tf.Tensor1D[] = [];
    forEachBlock(n, block, (start, rows) => {
      parts.push(
        tf.tidy(() => {
          let logits: tf.Tensor2D = tf.matMul(tf.slice(z, [start, 0], [rows, -1]), codebook, false, true); // [rows, K]
          if (options.bias) logits = tf.add(logits, options.bias);
          return tf.cast(tf.argMax(logits, 1), 'int32') as tf.Tensor1D;
        }),
      );
    });
    return parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor1D);
  });
}

/**
 * `E[indices]` for indices computed off the tape, with the codebook gradient (a scatter-add of
 * `dy` onto the selected rows) computed as `oneHot(idx)ᵀ·dy` in row blocks. `tf.gather`'s own
 * gradient needs UnsortedSegmentSum, which stock WASM lacks, and a dense one-hot would be `[N, K]`.
 */
export function gatherRows(codebook: tf.Tensor2D, indices: tf.Tensor1D, maxBlockElements: number): tf.Tensor2D {
  const [k] = codebook.shape;
  const [n] = indices.shape;
  const block = rowsPerBlock(k, maxBlockElements);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [e, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    save([indices]);
    return {
      value: tf.gather(e, indices),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [scatterRows(dy as tf.Tensor2D, saved[0] as tf.Tensor1D, k, n, block)],
    };
  });
  return f(codebook) as tf.Tensor2D;
}

/** `Σ_i onehot(idx_i)ᵀ dy_i`: `[K, D]`, accumulated over row blocks of `[rows, K]` one-hots. */
export function scatterRows(dy: tf.Tensor2D, indices: tf.Tensor1D, k: number, n: number, block: number): tf.Tensor2D {
  let acc: tf.Tensor2D = tf.zeros([k, dy.shape[1]]);
  forEachBlock(n, block, (start, rows) => {
    const next = tf.tidy(() =>
      tf.add(acc, tf.matMul(tf.oneHot(tf.slice(indices, [start], [rows]), k), tf.slice(dy, [start, 0], [rows, -1]), true, false)),
    );
    acc.dispose();
    acc = next as tf.Tensor2D;
  });
  return acc;
}
