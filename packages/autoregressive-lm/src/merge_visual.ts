import * as tf from '@tensorflow/tfjs-core';

/** Slots and visual embeddings that do not fit together. */
export class MergeVisualError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeVisualError';
  }
}

/** Marks the positions of `imageTokenId` in token ids `[B][T]`: the slots `mergeVisualEmbeddings` fills. */
export function imageSlotMask(ids: readonly (readonly number[])[], imageTokenId: number): boolean[][] {
  return ids.map((row) => row.map((id) => id === imageTokenId));
}

/**
 * Splices visual embeddings into text embeddings: row b's k-th slot (`slots[b][t]` truthy) gets
 * `visualEmbeds[b, k]`, every other position keeps `textEmbeds[b, t]`. Pure and differentiable wrt
 * both inputs (a gather over `[text; visual]` with indices computed here, off the tape).
 *
 * `textEmbeds` `[B, T, C]`, `visualEmbeds` `[B, N, C]`, `slots` `[B][T]` with exactly N slots per row.
 */
export function mergeVisualEmbeddings(
  textEmbeds: tf.Tensor3D,
  visualEmbeds: tf.Tensor3D,
  slots: readonly (readonly (boolean | number)[])[],
): tf.Tensor3D {
  if (textEmbeds.rank !== 3 || visualEmbeds.rank !== 3) {
    throw new MergeVisualError(
      `mergeVisualEmbeddings: expected textEmbeds [B, T, C] and visualEmbeds [B, N, C], got [${textEmbeds.shape}] and [${visualEmbeds.shape}]`,
    );
  }
  const [b, t, c] = textEmbeds.shape;
  const [vb, n, vc] = visualEmbeds.shape;
  if (vb !== b || vc !== c) {
    throw new MergeVisualError(
      `mergeVisualEmbeddings: visualEmbeds [${visualEmbeds.shape}] must match textEmbeds [${textEmbeds.shape}] in batch and width; project visual features to the LM hidden size ${c}`,
    );
  }
  if (slots.length !== b || slots.some((row) => row.length !== t)) {
    throw new MergeVisualError(`mergeVisualEmbeddings: slots must be ${b} rows of ${t} flags (one per text position)`);
  }
  const index = new Int32Array(b * t);
  for (let i = 0; i < b; i++) {
    let k = 0;
    for (let j = 0; j < t; j++) {
      if (slots[i][j]) {
        if (k >= n) throw new MergeVisualError(`mergeVisualEmbeddings: row ${i} has more image slots than the ${n} visual embeddings`);
        index[i * t + j] = b * t + i * n + k; // rows of visualEmbeds come after all text rows
        k++;
      } else {
        index[i * t + j] = i * t + j;
      }
    }
    if (k !== n)
      throw new MergeVisualError(`mergeVisualEmbeddings: row ${i} has ${k} image slots but there are ${n} visual embeddings per row`);
  }
  return tf.tidy(() => {
    const table = tf.concat([tf.reshape(textEmbeds, [b * t, c]), tf.reshape(visualEmbeds, [b * n, c])], 0);
    return tf.reshape(tf.gather(table, tf.tensor1d(index, 'int32')), [b, t, c]) as tf.Tensor3D;
  });
}
