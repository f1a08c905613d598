import * as tf from '@tensorflow/tfjs-core';
import type { WasmViews } from './slice';

/**
 * UnsortedSegmentSum, which tfjs-backend-wasm 4.22 lacks: it is the gradient of `gather` with
 * respect to the table, so without it no embedding trains on wasm. One pass over views of the
 * heap: each row of x is added into its segment's row, in order (duplicate ids sum). Ids outside
 * [0, numSegments) are dropped, as in TensorFlow. (A scatterND composition took 1.7 ms for the
 * LM's 344 × 128 embedding gradient; this takes a few µs.)
 */
export function unsortedSegmentSum(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const x = args.inputs['x'] as tf.TensorInfo;
  const segmentIds = args.inputs['segmentIds'] as tf.TensorInfo;
  const numSegments = (args.attrs as unknown as { numSegments: number }).numSegments;
  const idRank = segmentIds.shape.length;
  if (!tf.util.arraysEqual(x.shape.slice(0, idRank), segmentIds.shape)) {
    throw new Error(`UnsortedSegmentSum on wasm: segmentIds shape [${segmentIds.shape}] must be a prefix of x shape [${x.shape}].`);
  }
  const rest = x.shape.slice(idRank);
  const d = tf.util.sizeFromShape(rest);
  const backend = args.backend as WasmViews;
  const out = backend.makeOutput([numSegments, ...rest], x.dtype);
  // Views after makeOutput: allocating may grow (and so replace) the heap.
  const dst = backend.typedArrayFromHeap(out);
  const src = backend.typedArrayFromHeap(x);
  const ids = backend.typedArrayFromHeap(segmentIds);
  dst.fill(0);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(id >= 0 && id < numSegments)) continue;
    const from = i * d;
    const to = id * d;
    for (let j = 0; j < d; j++) dst[to + j]! += src[from + j];
  }
  return out;
}

/**
 * GatherV2 along axis 0 without batch dims, the embedding lookup: one row copy per index from a
 * view of the heap (the stock kernel took about 1 ms for 344 rows of 128). Indices outside the
 * table, other axes and batch dims run `stock`, which handles (or rejects) them as before.
 */
export function gatherRows(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    const indices = args.inputs['indices'] as tf.TensorInfo;
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
    if (x.dtype === 'string' || indices.dtype !== 'int32' || (batchDims ?? 0) !== 0 || tf.util.parseAxisParam(axis, x.shape)[0] !== 0) {
      return stock(args);
    }
    const backend = args.backend as WasmViews;
    const rows = x.shape[0]!;
    const ids = backend.typedArrayFromHeap(indices);
    for (let i = 0; i < ids.length; i++) if (!(ids[i]! >= 0 && ids[i]! < rows)) return stock(args);
    const d = tf.util.sizeFromShape(x.shape.slice(1));
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    if (d === 0 || ids.length === 0) return out;
    const dst = backend.typedArrayFromHeap(out);
    const src = backend.typedArrayFromHeap(x);
    const idx = backend.typedArrayFromHeap(indices);
    for (let i = 0; i < idx.length; i++) {
      const from = idx[i]! * d;
      if (d < 16) for (let j = 0; j < d; j++) dst[i * d + j] = src[from + j]!;
      else dst.set(src.subarray(from, from + d), i * d);
    }
    return out;
  };
}
