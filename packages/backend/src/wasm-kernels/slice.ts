import * as tf from '@tensorflow/tfjs-core';
import { contiguousStrides, nativeCopy } from './native';

// Slice and SplitV without a copy of the whole input. tfjs-backend-wasm 4.22's Slice starts with
// `backend.readSync(x)`, which copies the entire input out of the heap on every call, and SplitV
// runs that Slice once per part: splitting a 570 000-element vector into 173 parts took 0.5-1.9 s.
// These read the input through a view of the heap and copy only what the output needs: on the
// native addon as one strided copy (float32/int32), else run by run in JavaScript.

/** The parts of tfjs-backend-wasm's backend that read and write tensors through views of its heap. */
export interface WasmViews extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

type KernelArgs = Parameters<tf.KernelFunc>[0];

/** Copies the box `begin`/`size` of `x` into a new output (x is not a string tensor). */
function copyBox(backend: WasmViews, x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const n = tf.util.sizeFromShape(size);
  if (n === 0) return out;
  // Views after makeOutput: allocating may grow (and so replace) the heap.
  const src = backend.typedArrayFromHeap(x);
  const dst = backend.typedArrayFromHeap(out);
  const strides = tf.util.computeStrides(x.shape);
  if (tf.slice_util.isSliceContinous(x.shape, begin, size)) {
    const offset = tf.slice_util.computeFlatOffset(begin, strides);
    dst.set(src.subarray(offset, offset + n));
    return out;
  }
  const xStrides = contiguousStrides(x.shape);
  const start = begin.reduce((sum, b, k) => sum + b * xStrides[k]!, 0);
  if (nativeCopy(backend, x, start, out, 0, size, xStrides, contiguousStrides(size))) return out;
  // Trailing dimensions the box spans whole merge into the one before them (an image's rows without
  // their first pixel: runs of 31·3 floats, not 3), so each run is one copy.
  const shape = [...x.shape];
  begin = [...begin];
  size = [...size];
  while (shape.length > 1 && size.at(-1) === shape.at(-1)) {
    const d = shape.pop()!;
    size.pop();
    begin.pop();
    shape[shape.length - 1]! *= d;
    size[size.length - 1]! *= d;
    begin[begin.length - 1]! *= d;
  }
  const outer = tf.util.computeStrides(shape);
  // Copy runs of the innermost dimension; `index` walks the outer dimensions of the box.
  const rank = size.length;
  const inner = size[rank - 1]!;
  const index = new Array<number>(rank - 1).fill(0);
  for (let written = 0; written < n; written += inner) {
    let from = begin[rank - 1]!;
    for (let d = 0; d < rank - 1; d++) from += (begin[d]! + index[d]!) * outer[d]!;
    if (inner < 16) {
      for (let i = 0; i < inner; i++) dst[written + i] = src[from + i]!;
    } else {
      dst.set(src.subarray(from, from + inner), written);
    }
    for (let d = rank - 2; d >= 0; d--) {
      if (++index[d]! < size[d]!) break;
      index[d] = 0;
    }
  }
  return out;
}

export function sliceFromView(stock: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    if (x.dtype === 'string' || x.dtype === 'complex64') return stock(args);
    const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [begin_, size_] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    tf.slice_util.assertParamsValid(x as tf.Tensor, begin_, size_);
    return copyBox(args.backend as WasmViews, x, begin_, size_);
  };
}

export function splitVFromView(stock: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    if (x.dtype === 'string' || x.dtype === 'complex64') return stock(args);
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const ax = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, ax);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const size = [...x.shape];
      size[ax] = s;
      const part = copyBox(args.backend as WasmViews, x, [...begin], size);
      begin[ax]! += s;
      return part;
    });
  };
}

/**
 * Concat from heap views. The stock kernel makes a subarray view per (outer index, input) run, and
 * ~0.1 µs each adds up: concatenating two [2048, 1, 32] tensors on axis 1 is 4 096 views for 32
 * floats apiece (250 µs). Inputs and output all live in the wasm heap, so each run here is one
 * `copyWithin` of a single view of the whole heap (70 µs); on the native addon each input is one
 * strided copy (float32/int32). Strings, and concats with at most one non-empty input, go to the
 * stock kernel.
 */
export function concatFromViews(stock: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const nonEmpty = inputs.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
    if (nonEmpty.length < 2 || nonEmpty.some((t) => t.dtype === 'string' || t.dtype === 'complex64' || t.dtype !== nonEmpty[0]!.dtype)) {
      return stock(args);
    }
    const axis = tf.util.parseAxisParam((args.attrs as unknown as { axis: number }).axis, inputs[0]!.shape)[0]!;
    const shapes = inputs.map((t) => t.shape);
    tf.backend_util.assertParamsConsistent(shapes, axis);
    const outShape = tf.backend_util.computeOutShape(shapes, axis);
    const backend = args.backend as WasmViews;
    const out = backend.makeOutput(outShape, nonEmpty[0]!.dtype);
    const outer = tf.util.sizeFromShape(outShape.slice(0, axis));
    const runs = nonEmpty.map((t) => tf.util.sizeFromShape(t.shape.slice(axis)));
    const row = runs.reduce((a, b) => a + b, 0);
    // Input i fills columns [Σ earlier runs, + its run) of the output seen as [outer, row].
    let column = 0;
    const native = nonEmpty.every((t, i) => {
      const done = nativeCopy(backend, t, 0, out, column, [outer, runs[i]!], [runs[i]!, 1], [row, 1]);
      column += runs[i]!;
      return done;
    });
    if (native) return out;
    // Views after makeOutput: allocating may grow (and so replace) the heap.
    const dst = backend.typedArrayFromHeap(out);
    const Ctor = dst.constructor as new (buffer: ArrayBufferLike) => Float32Array | Int32Array | Uint8Array;
    const heap = new Ctor(dst.buffer);
    const start = (v: ArrayBufferView & { BYTES_PER_ELEMENT: number }) => v.byteOffset / v.BYTES_PER_ELEMENT;
    const froms = nonEmpty.map((t) => start(backend.typedArrayFromHeap(t)));
    let o = start(dst);
    for (let b = 0; b < outer; b++) {
      for (let i = 0; i < froms.length; i++) {
        const n = runs[i]!;
        const from = froms[i]! + b * n;
        heap.copyWithin(o, from, from + n);
        o += n;
      }
    }
    return out;
  };
}
