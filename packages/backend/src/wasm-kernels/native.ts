import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from '../native/load';
import type { ConvGradAttrs } from './conv2d-geometry';

// wasm kernels that run on the native addon (src/native/load.ts): BatchMatMul as one batched GEMM
// with the transposes as flags, and Conv2D and its two gradients as im2col + GEMM. They read their
// inputs from and write their output into the wasm heap in place, through each tensor's
// `memoryOffset`. Each falls back to the kernel it replaces when the addon is off or the case is one
// it does not cover (non-float32, NCHW, broadcast batch shapes other than "equal or 1").

/** The parts of tfjs-backend-wasm 4.22's BackendWasm these kernels use. */
interface WasmHeapBackend extends tf.KernelBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

const KEY = Symbol.for('@ettjs/backend.nativeKernels');
type WithState = typeof globalThis & { [KEY]?: { addon: NativeAddon | null } };

function state(): { addon: NativeAddon | null } {
  const g = globalThis as WithState;
  g[KEY] ??= { addon: null };
  return g[KEY];
}

/** Turns the native kernels on (with the loaded addon) or off (null): the wasm kernels then run instead. */
export function setNativeAddon(addon: NativeAddon | null): void {
  state().addon = addon;
}

/** The addon the wasm kernels run on now, or null. */
export function activeNativeAddon(): NativeAddon | null {
  return state().addon;
}

/**
 * The active addon and the wasm backend with its heap, where the addon has the entry point `entry`
 * and `backend` is tfjs-backend-wasm; else null (the caller's fallback runs).
 */
function nativeFor(backend: unknown, entry: keyof NativeAddon): { addon: NativeAddon; backend: WasmHeapBackend } | null {
  const addon = activeNativeAddon();
  const heap = heapBackend(backend as tf.KernelBackend);
  return addon != null && heap != null && typeof addon[entry] === 'function' ? { addon, backend: heap } : null;
}

function heapBackend(backend: tf.KernelBackend): WasmHeapBackend | null {
  const b = backend as Partial<WasmHeapBackend>;
  return b.wasm?.HEAPU8 instanceof Uint8Array && typeof b.dataIdMap?.get === 'function' && typeof b.makeOutput === 'function'
    ? (b as WasmHeapBackend)
    : null;
}

const views = new WeakMap<ArrayBufferLike, Float32Array>();

/** A float32 view of the whole heap. Read anew each call: memory growth replaces the buffer. */
function heapF32(backend: WasmHeapBackend): Float32Array {
  const buffer = backend.wasm.HEAPU8.buffer;
  let view = views.get(buffer);
  if (view == null) {
    view = new Float32Array(buffer);
    views.set(buffer, view);
  }
  return view;
}

function offset(backend: WasmHeapBackend, t: tf.TensorInfo): number {
  const bytes = backend.dataIdMap.get(t.dataId)!.memoryOffset;
  if (bytes % 4 !== 0) throw new Error(`@ettjs/backend native kernels: tensor memory at byte ${bytes} is not 4-byte aligned`);
  return bytes / 4;
}

/** BatchMatMul on the addon's GEMM; `fallback` runs where the addon is off or the case is not covered. */
export function nativeBatchMatMul(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'gemm');
    const a = args.inputs['a'] as tf.Tensor;
    const b = args.inputs['b'] as tf.Tensor;
    if (native == null || a.dtype !== 'float32' || b.dtype !== 'float32' || a.rank < 2 || b.rank < 2) return fallback(args);
    const { addon, backend } = native;
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const batch = tf.util.sizeFromShape(outer);
    const ga = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const gb = tf.util.sizeFromShape(b.shape.slice(0, -2));
    if ((ga !== batch && ga !== 1) || (gb !== batch && gb !== 1)) return fallback(args);
    const [ar, ac] = a.shape.slice(-2) as [number, number];
    const [br, bc] = b.shape.slice(-2) as [number, number];
    const [m, k] = transposeA ? [ac, ar] : [ar, ac];
    const [kb, n] = transposeB ? [bc, br] : [br, bc];
    if (k !== kb) {
      throw new Error(
        `Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
      );
    }
    if (m === 0 || n === 0 || batch === 0) return fallback(args);
    const out = backend.makeOutput([...outer, m, n], 'float32');
    addon.gemm(
      heapF32(backend),
      offset(backend, a),
      offset(backend, b),
      offset(backend, out),
      batch,
      m,
      n,
      k,
      transposeA ? 1 : 0,
      transposeB ? 1 : 0,
      ga === 1 ? 0 : m * k,
      gb === 1 ? 0 : k * n,
    );
    return out;
  };
}

/** The 15 numbers the addon's conv2d takes, from tfjs's own geometry. */
function geometry(info: tf.backend_util.Conv2DInfo): number[] {
  return [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.outChannels,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
    info.dilationHeight,
    info.dilationWidth,
    info.padInfo.top,
    info.padInfo.left,
  ];
}

function convInfo(
  xShape: number[],
  filterShape: number[],
  attrs: ConvGradAttrs,
  dilations: [number, number] | number,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides,
    dilations,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
}

type ConvMode = 0 | 1 | 2;

function runConv(
  mode: ConvMode,
  fallback: tf.KernelFunc,
  pick: (
    args: Parameters<tf.KernelFunc>[0],
  ) => { in0: tf.TensorInfo; in1: tf.TensorInfo; bias?: tf.TensorInfo; info: tf.backend_util.Conv2DInfo; outShape: number[] } | null,
): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'conv2d');
    const attrs = args.attrs as unknown as ConvGradAttrs;
    // FusedConv2D's inputs hold undefined for the parts it was not given.
    const inputs = (Object.values(args.inputs) as (tf.TensorInfo | undefined)[]).filter((t): t is tf.TensorInfo => t != null);
    if (native == null || attrs.dataFormat !== 'NHWC' || inputs.some((t) => t.dtype !== 'float32')) return fallback(args);
    const { addon, backend } = native;
    const picked = pick(args);
    if (picked == null || tf.util.sizeFromShape(picked.outShape) === 0 || inputs.some((t) => tf.util.sizeFromShape(t.shape) === 0)) {
      return fallback(args);
    }
    const out = backend.makeOutput(picked.outShape, 'float32');
    addon.conv2d(
      mode,
      heapF32(backend),
      offset(backend, picked.in0),
      offset(backend, picked.in1),
      offset(backend, out),
      ...geometry(picked.info),
      picked.bias != null ? offset(backend, picked.bias) : -1,
    );
    return out;
  };
}

/** Conv2D (NHWC, any stride, dilation and padding) as im2col + GEMM. */
export function nativeConv2D(fallback: tf.KernelFunc): tf.KernelFunc {
  return runConv(0, fallback, (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    const filter = args.inputs['filter'] as tf.TensorInfo;
    const attrs = args.attrs as unknown as ConvGradAttrs & { dilations: [number, number] | number };
    const info = convInfo(x.shape, filter.shape, attrs, attrs.dilations ?? 1);
    return { in0: x, in1: filter, info, outShape: info.outShape };
  });
}

/**
 * FusedConv2D with a per-channel bias and no activation (what `tf.fused.conv2d({x, filter, bias})`
 * runs): the bias starts the accumulators of the conv, instead of a separate Add over the output.
 * Activations, PReLU weights and other bias shapes run `fallback` (stock XNNPACK).
 */
export function nativeFusedConv2D(fallback: tf.KernelFunc): tf.KernelFunc {
  return runConv(0, fallback, (args) => {
    const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const attrs = args.attrs as unknown as ConvGradAttrs & { dilations: [number, number] | number; activation?: string };
    if (x == null || filter == null || preluActivationWeights != null || (attrs.activation ?? 'linear') !== 'linear') return null;
    const outC = filter.shape[3]!;
    if (bias != null && (tf.util.sizeFromShape(bias.shape) !== outC || bias.shape.at(-1) !== outC)) return null;
    const info = convInfo(x.shape, filter.shape, attrs, attrs.dilations ?? 1);
    return { in0: x, in1: filter, bias, info, outShape: info.outShape };
  });
}

/** Conv2DBackpropInput: dy · Wᵀ, then col2im. */
export function nativeConv2DBackpropInput(fallback: tf.KernelFunc): tf.KernelFunc {
  return runConv(1, fallback, (args) => {
    const dy = args.inputs['dy'] as tf.TensorInfo;
    const filter = args.inputs['filter'] as tf.TensorInfo;
    const attrs = args.attrs as unknown as ConvGradAttrs & { inputShape: [number, number, number, number] };
    const info = convInfo(attrs.inputShape, filter.shape, attrs, 1);
    return { in0: dy, in1: filter, info, outShape: [...attrs.inputShape] };
  });
}

/** Conv2DBackpropFilter: im2col(x)ᵀ · dy. */
export function nativeConv2DBackpropFilter(fallback: tf.KernelFunc): tf.KernelFunc {
  return runConv(2, fallback, (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    const dy = args.inputs['dy'] as tf.TensorInfo;
    const attrs = args.attrs as unknown as ConvGradAttrs & { filterShape: [number, number, number, number] };
    const info = convInfo(x.shape, attrs.filterShape, attrs, 1);
    return { in0: x, in1: dy, info, outShape: [...attrs.filterShape] };
  });
}

/**
 * The fused GroupNorm kernels (src/fused/group-norm.ts) on the native addon: forward (`dy` null) or
 * backward. Returns null when the addon is off, the backend is not wasm, or this addon build lacks
 * the entry point; the caller then runs its JavaScript loops.
 */
export function nativeGroupNorm(
  backendArg: unknown,
  t: { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo; dy: tf.TensorInfo | null },
  attrs: { groups: number; eps: number; activation: 'none' | 'silu' },
): tf.TensorInfo[] | null {
  const native = nativeFor(backendArg, 'groupNorm');
  if (native == null) return null;
  const { addon, backend } = native;
  const [b, h, w, c] = t.x.shape as [number, number, number, number];
  const outs =
    t.dy == null ? [backend.makeOutput(t.x.shape, 'float32')] : [t.x.shape, [c], [c]].map((s) => backend.makeOutput(s, 'float32'));
  const at = (x: tf.TensorInfo | null | undefined) => (x == null ? 0 : offset(backend, x));
  addon.groupNorm(
    t.dy == null ? 0 : 1,
    heapF32(backend),
    at(t.x),
    at(t.gamma),
    at(t.beta),
    at(t.dy),
    at(outs[0]),
    at(outs[1]),
    at(outs[2]),
    b,
    h * w,
    c,
    attrs.groups,
    attrs.activation === 'silu' ? 1 : 0,
    attrs.eps,
  );
  return outs;
}

/**
 * RMSNorm over the last axis on the addon: [y] forward, [dx, dw] when `dy` is given; null where the
 * addon or the wasm heap is not there (the caller runs its JavaScript loops).
 */
export function nativeRmsNorm(
  backendArg: unknown,
  t: { x: tf.TensorInfo; weight: tf.TensorInfo; dy: tf.TensorInfo | null },
  eps: number,
): tf.TensorInfo[] | null {
  const native = nativeFor(backendArg, 'rmsNorm');
  if (native == null) return null;
  const { addon, backend } = native;
  const cols = t.x.shape[t.x.shape.length - 1]!;
  const rows = tf.util.sizeFromShape(t.x.shape) / cols;
  const outs = t.dy == null ? [backend.makeOutput(t.x.shape, 'float32')] : [t.x.shape, [cols]].map((s) => backend.makeOutput(s, 'float32'));
  const at = (x: tf.TensorInfo | null | undefined) => (x == null ? 0 : offset(backend, x));
  addon.rmsNorm(t.dy == null ? 0 : 1, heapF32(backend), at(t.x), at(t.weight), at(t.dy), at(outs[0]), at(outs[1]), rows, cols, eps);
  return outs;
}

/** SwiGLU gating on the addon: [y] forward, [dg, du] when `dy` is given; null where the addon or the wasm heap is not there. */
export function nativeSwiglu(
  backendArg: unknown,
  t: { gate: tf.TensorInfo; up: tf.TensorInfo; dy: tf.TensorInfo | null },
): tf.TensorInfo[] | null {
  const native = nativeFor(backendArg, 'swiglu');
  if (native == null) return null;
  const { addon, backend } = native;
  const outs = (t.dy == null ? [t.gate.shape] : [t.gate.shape, t.gate.shape]).map((s) => backend.makeOutput(s, 'float32'));
  const at = (x: tf.TensorInfo | null | undefined) => (x == null ? 0 : offset(backend, x));
  addon.swiglu(
    t.dy == null ? 0 : 1,
    heapF32(backend),
    at(t.gate),
    at(t.up),
    at(t.dy),
    at(outs[0]),
    at(outs[1]),
    tf.util.sizeFromShape(t.gate.shape),
  );
  return outs;
}

/** Max over the trailing axes (float32) on the addon; every other case runs `fallback`. */
export function nativeMax(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'max');
    const x = args.inputs['x'] as tf.TensorInfo;
    if (native == null || x.dtype !== 'float32') return fallback(args);
    const { reductionIndices, keepDims } = args.attrs as unknown as { reductionIndices: number | number[]; keepDims: boolean };
    const axes = [...new Set(tf.util.parseAxisParam(reductionIndices, x.shape))].sort((p, q) => p - q);
    const r = x.shape.length;
    const n = tf.util.sizeFromShape(x.shape);
    if (axes.length === 0 || n === 0 || !axes.every((ax, i) => ax === r - axes.length + i)) return fallback(args);
    const cols = tf.util.sizeFromShape(axes.map((ax) => x.shape[ax]!));
    const { addon, backend } = native;
    const outShape = keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
    const out = backend.makeOutput(outShape, 'float32');
    addon.max(heapF32(backend), offset(backend, x), offset(backend, out), n / cols, cols);
    return out;
  };
}

/**
 * ArgMax of float32 over the last axis on the addon (int32 out; tfjs's first-maximum scan, NaN after
 * the first element never wins); other axes and dtypes run `fallback` (stock: 150 µs for [512, 256]).
 */
export function nativeArgMax(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'argMax');
    const x = args.inputs['x'] as tf.TensorInfo;
    const r = x.shape.length;
    const n = tf.util.sizeFromShape(x.shape);
    if (native == null || x.dtype !== 'float32' || n === 0 || r === 0) return fallback(args);
    const { axis } = args.attrs as unknown as tf.ArgMaxAttrs;
    const axes = tf.util.parseAxisParam(axis, x.shape);
    if (axes.length !== 1 || axes[0] !== r - 1) return fallback(args);
    const { addon, backend } = native;
    const cols = x.shape[r - 1]!;
    const out = backend.makeOutput(x.shape.slice(0, -1), 'int32');
    addon.argMax(heapF32(backend), offset(backend, x), offset(backend, out), n / cols, cols);
    return out;
  };
}

/**
 * AvgPool of float32 NHWC on the addon where every window lies whole inside the input (no padding,
 * dilation 1; the divisor is then the window size on every backend); else `fallback` (stock: 50 µs
 * for the structural loss's 3×3 box filter over [8, 32, 32, 3]).
 */
export function nativeAvgPool(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'avgPool');
    const x = args.inputs['x'] as tf.TensorInfo;
    if (native == null || x.dtype !== 'float32' || x.shape.length !== 4 || tf.util.sizeFromShape(x.shape) === 0) return fallback(args);
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tf.AvgPoolAttrs;
    const info = tf.backend_util.computePool2DInfo(
      x.shape as [number, number, number, number],
      filterSize,
      strides,
      1,
      pad,
      dimRoundingMode,
    );
    const p = info.padInfo;
    if (p.top !== 0 || p.bottom !== 0 || p.left !== 0 || p.right !== 0 || info.outHeight < 1 || info.outWidth < 1) return fallback(args);
    const { addon, backend } = native;
    const out = backend.makeOutput(info.outShape, 'float32');
    addon.avgPool(
      heapF32(backend),
      offset(backend, x),
      offset(backend, out),
      info.batchSize,
      info.inChannels,
      info.inHeight,
      info.inWidth,
      info.outHeight,
      info.outWidth,
      info.strideHeight,
      info.strideWidth,
      info.filterHeight,
      info.filterWidth,
    );
    return out;
  };
}

/** Σ x² over float32 tensors on the addon, as a float32 scalar; null where the addon or the wasm heap is not there. */
export function nativeSumSquares(backendArg: unknown, list: readonly tf.TensorInfo[]): tf.TensorInfo | null {
  const native = nativeFor(backendArg, 'sumSquares');
  if (native == null) return null;
  const { addon, backend } = native;
  const out = backend.makeOutput([], 'float32');
  const table = new Int32Array(2 * list.length);
  list.forEach((t, i) => {
    table[2 * i] = offset(backend, t);
    table[2 * i + 1] = tf.util.sizeFromShape(t.shape);
  });
  addon.sumSquares(heapF32(backend), table, list.length, offset(backend, out));
  return out;
}

const BINARY_OPS = { [tf.Add]: 0, [tf.Sub]: 1, [tf.Multiply]: 2, [tf.RealDiv]: 3 } as const;

/** Whether `small`, without its leading 1s, is the trailing dimensions of `big`. */
function isTrailing(small: readonly number[], big: readonly number[]): boolean {
  let i = 0;
  while (i < small.length && small[i] === 1) i++;
  const rest = small.slice(i);
  return rest.length <= big.length && rest.every((d, j) => d === big[big.length - rest.length + j]);
}

/**
 * A broadcast of `a` and `b` to `out` as at most four dimensions, for the addon's `broadcast`: the
 * output's dimensions of size 1 dropped, neighbours that broadcast the same way merged, leading 1s
 * added; each operand's strides are 0 where it broadcasts. Null when more than four remain.
 */
export function collapseBroadcast(
  a: readonly number[],
  b: readonly number[],
  out: readonly number[],
): { dims: number[]; stridesA: number[]; stridesB: number[] } | null {
  const r = out.length;
  const at = (shape: readonly number[], i: number) => shape[i - (r - shape.length)] ?? 1;
  const dims: number[] = [];
  const kinds: number[] = []; // bit 0: a broadcasts here, bit 1: b does
  for (let i = 0; i < r; i++) {
    const d = out[i]!;
    if (d === 1) continue;
    const kind = (at(a, i) === 1 ? 1 : 0) | (at(b, i) === 1 ? 2 : 0);
    if (kinds.length > 0 && kinds.at(-1) === kind) dims[dims.length - 1]! *= d;
    else {
      dims.push(d);
      kinds.push(kind);
    }
  }
  if (dims.length > 4) return null;
  while (dims.length < 4) {
    dims.unshift(1);
    kinds.unshift(3);
  }
  const strides = (bit: number) => {
    const s = [0, 0, 0, 0];
    let step = 1;
    for (let i = 3; i >= 0; i--) {
      if ((kinds[i]! & bit) === 0) {
        s[i] = step;
        step *= dims[i]!;
      }
    }
    return s;
  };
  return { dims, stridesA: strides(1), stridesB: strides(2) };
}

/**
 * Add, Sub, Multiply or RealDiv of two float32 tensors on the addon: one operand the other's
 * trailing dimensions (same shape, a scalar, a bias over channels) as one split loop, any other
 * broadcast (a row scale [n, 1], an attention mask [b, 1, t, t]) as rows of at most four collapsed
 * dimensions. int32, size 0 and broadcasts of more than four collapsed dimensions run `fallback`.
 */
export function nativeBinary(kernelName: keyof typeof BINARY_OPS, fallback: tf.KernelFunc): tf.KernelFunc {
  const op = BINARY_OPS[kernelName];
  return (args) => {
    const native = nativeFor(args.backend, 'binary');
    const a = args.inputs['a'] as tf.TensorInfo;
    const b = args.inputs['b'] as tf.TensorInfo;
    if (native == null || a.dtype !== 'float32' || b.dtype !== 'float32') return fallback(args);
    const { addon, backend } = native;
    const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const n = tf.util.sizeFromShape(outShape);
    const sa = tf.util.sizeFromShape(a.shape);
    const sb = tf.util.sizeFromShape(b.shape);
    if (n === 0) return fallback(args);
    const aBig = sa === n && isTrailing(b.shape, a.shape);
    if (aBig || (sb === n && isTrailing(a.shape, b.shape))) {
      const [big, small] = aBig ? [a, b] : [b, a];
      const out = backend.makeOutput(outShape, 'float32');
      addon.binary(
        op,
        heapF32(backend),
        offset(backend, big),
        offset(backend, small),
        offset(backend, out),
        n,
        aBig ? sb : sa,
        aBig ? 0 : 1,
      );
      return out;
    }
    const collapsed = typeof addon.broadcast === 'function' ? collapseBroadcast(a.shape, b.shape, outShape) : null;
    if (collapsed == null) return fallback(args);
    const { dims, stridesA, stridesB } = collapsed;
    const out = backend.makeOutput(outShape, 'float32');
    addon.broadcast(op, heapF32(backend), offset(backend, a), offset(backend, b), offset(backend, out), ...dims, ...stridesA, ...stridesB);
    return out;
  };
}

/**
 * Sum (or, with `mean`, Mean) of a float32 tensor over its leading or its trailing axes (or all) on
 * the addon; other axes run `fallback`. Mean divides the double sum before its one rounding (stock
 * wasm's Mean took 70 µs for a batch norm's mean of [8, 7, 7, 64] over the leading axes, its Sum 9).
 */
export function nativeSum(fallback: tf.KernelFunc, mean = false): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'sum');
    const x = args.inputs['x'] as tf.TensorInfo;
    if (native == null || x.dtype !== 'float32') return fallback(args);
    const { addon, backend } = native;
    const { axis, keepDims } = args.attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const axes = [...new Set(tf.util.parseAxisParam(axis, x.shape))].sort((p, q) => p - q);
    const r = x.shape.length;
    const k = axes.length;
    const leading = axes.every((ax, i) => ax === i);
    const trailing = axes.every((ax, i) => ax === r - k + i);
    const n = tf.util.sizeFromShape(x.shape);
    if (k === 0 || n === 0 || !(leading || trailing)) return fallback(args);
    const reduced = tf.util.sizeFromShape(axes.map((ax) => x.shape[ax]!));
    const kept = n / reduced;
    const outShape = keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
    const out = backend.makeOutput(outShape, 'float32');
    // Leading: rows = the reduced size, one sum per column; trailing (or all axes): one sum per row.
    const useLeading = leading && k < r;
    addon.sum(
      heapF32(backend),
      offset(backend, x),
      offset(backend, out),
      useLeading ? reduced : kept,
      useLeading ? kept : reduced,
      useLeading ? 1 : 0,
      mean ? reduced : 1,
    );
    return out;
  };
}

/**
 * The fused AdamW kernel (src/fused/adamw.ts) on the native addon: `params` are [param, grad, m, v]
 * per parameter; returns [m', v', param'] per parameter, or null when the addon is off or the
 * backend is not wasm (the caller then runs its JavaScript loops).
 */
export function nativeAdamW(
  backendArg: unknown,
  params: [tf.TensorInfo, tf.TensorInfo, tf.TensorInfo, tf.TensorInfo][],
  h: { b1: number; b2: number; eps: number; decay: number; stepSize: number; bc2Sqrt: number },
): tf.TensorInfo[] | null {
  const native = nativeFor(backendArg, 'adamw');
  if (native == null) return null;
  const { addon, backend } = native;
  const outs = params.flatMap(([p]) => [0, 1, 2].map(() => backend.makeOutput(p.shape, 'float32')));
  const table = new Int32Array(params.length * 8);
  params.forEach((ts, i) => {
    const row = [...ts, ...outs.slice(3 * i, 3 * i + 3)].map((t) => offset(backend, t));
    table.set([...row, tf.util.sizeFromShape(ts[0].shape)], 8 * i);
  });
  addon.adamw(heapF32(backend), table, params.length, h.b1, h.b2, h.eps, h.decay, h.stepSize, h.bc2Sqrt);
  return outs;
}

/** Exp of a float32 tensor on the addon (vectorized, threads); other dtypes run `fallback`. */
export function nativeExp(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'exp');
    const x = args.inputs['x'] as tf.TensorInfo;
    const n = tf.util.sizeFromShape(x.shape);
    if (native == null || x.dtype !== 'float32' || n === 0) return fallback(args);
    const { addon, backend } = native;
    const out = backend.makeOutput(x.shape, 'float32');
    addon.exp(heapF32(backend), offset(backend, x), offset(backend, out), n);
    return out;
  };
}

/**
 * AvgPoolGrad of float32 NHWC tensors on the addon, with tfjs's semantics (every window's share is
 * dy / (filterH·filterW), also where 'same' padding cut the window); other dtypes run `fallback`.
 */
export function nativeAvgPoolGrad(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'avgPoolGrad');
    const dy = args.inputs['dy'] as tf.TensorInfo;
    const input = args.inputs['input'] as tf.TensorInfo;
    if (native == null || dy.dtype !== 'float32' || input.dtype !== 'float32') return fallback(args);
    const { addon, backend } = native;
    const { filterSize, strides, pad } = args.attrs as unknown as tf.AvgPoolGradAttrs;
    const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad);
    if (tf.util.sizeFromShape(input.shape) === 0 || tf.util.sizeFromShape(dy.shape) === 0 || info.padInfo.top < 0 || info.padInfo.left < 0)
      return fallback(args);
    const dx = backend.makeOutput(input.shape, 'float32');
    addon.avgPoolGrad(
      heapF32(backend),
      offset(backend, dy),
      offset(backend, dx),
      info.batchSize,
      info.inChannels,
      info.inHeight,
      info.inWidth,
      info.outHeight,
      info.outWidth,
      info.strideHeight,
      info.strideWidth,
      info.filterHeight,
      info.filterWidth,
      info.padInfo.top,
      info.padInfo.left,
    );
    return dx;
  };
}

/** Softmax over the last axis of a float32 tensor on the addon (vectorized exp, threads); anything else runs `fallback`. */
export function nativeSoftmax(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'softmax');
    const logits = args.inputs['logits'] as tf.TensorInfo;
    const { dim } = args.attrs as unknown as { dim: number };
    const rank = logits.shape.length;
    const n = tf.util.sizeFromShape(logits.shape);
    const last = rank > 0 && (dim === -1 || dim === rank - 1);
    if (native == null || logits.dtype !== 'float32' || n === 0 || !last) return fallback(args);
    const { addon, backend } = native;
    const cols = logits.shape[rank - 1]!;
    const out = backend.makeOutput(logits.shape, 'float32');
    addon.softmax(heapF32(backend), offset(backend, logits), offset(backend, out), n / cols, cols);
    return out;
  };
}

/** Row-major element strides of `shape` (the last one 1). */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    strides[k] = s;
    s *= shape[k]!;
  }
  return strides;
}

/**
 * The index box `dims` with source and destination strides, as four dimensions: size-1 dimensions
 * dropped, neighbours that are contiguous in both merged (an image's rows without their first
 * pixel: runs of 31·3 elements), leading 1s added. Null when more than four remain.
 */
export function collapseCopy(
  dims: readonly number[],
  srcStrides: readonly number[],
  dstStrides: readonly number[],
): { dims: number[]; src: number[]; dst: number[] } | null {
  const d: number[] = [];
  const s: number[] = [];
  const t: number[] = [];
  for (let k = 0; k < dims.length; k++) {
    const n = dims[k]!;
    if (n === 1) continue;
    const last = d.length - 1;
    if (last >= 0 && s[last] === srcStrides[k]! * n && t[last] === dstStrides[k]! * n) {
      d[last]! *= n;
      s[last] = srcStrides[k]!;
      t[last] = dstStrides[k]!;
    } else {
      d.push(n);
      s.push(srcStrides[k]!);
      t.push(dstStrides[k]!);
    }
  }
  if (d.length > 4) return null;
  while (d.length < 4) {
    d.unshift(1);
    s.unshift(0);
    t.unshift(0);
  }
  return { dims: d, src: s, dst: t };
}

const FOUR_BYTES: ReadonlySet<tf.DataType> = new Set(['float32', 'int32']);

/**
 * dst[dstStart + Σ i·dstStrides] = src[srcStart + Σ i·srcStrides] for i within `dims` (element
 * offsets and strides) on the addon. False where it cannot (addon off, not wasm, a dtype other than
 * float32/int32, more than four dimensions after merging): the caller copies itself.
 */
export function nativeCopy(
  backendArg: unknown,
  src: tf.TensorInfo,
  srcStart: number,
  dst: tf.TensorInfo,
  dstStart: number,
  dims: readonly number[],
  srcStrides: readonly number[],
  dstStrides: readonly number[],
): boolean {
  const native = nativeFor(backendArg, 'copy');
  if (native == null || !FOUR_BYTES.has(src.dtype) || src.dtype !== dst.dtype) return false;
  const box = collapseCopy(dims, srcStrides, dstStrides);
  if (box == null) return false;
  runCopy(native, src, srcStart, dst, dstStart, box);
  return true;
}

/** The addon's copy of a box `collapseCopy` gave. */
function runCopy(
  { addon, backend }: { addon: NativeAddon; backend: WasmHeapBackend },
  src: tf.TensorInfo,
  srcStart: number,
  dst: tf.TensorInfo,
  dstStart: number,
  box: { dims: number[]; src: number[]; dst: number[] },
): void {
  addon.copy(heapF32(backend), offset(backend, src) + srcStart, offset(backend, dst) + dstStart, ...box.dims, ...box.src, ...box.dst);
}

/** Transpose as one strided copy on the addon (float32/int32, at most four dimensions once merged); else `fallback`. */
export function nativeTranspose(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    const { perm } = args.attrs as unknown as tf.TransposeAttrs;
    const native = nativeFor(args.backend, 'copy');
    if (native == null || !FOUR_BYTES.has(x.dtype) || tf.util.sizeFromShape(x.shape) === 0) return fallback(args);
    const inStrides = contiguousStrides(x.shape);
    const outShape = perm.map((p) => x.shape[p]!);
    // Walks the output in order: output dimension k steps through x with x's stride of axis perm[k].
    const srcStrides = perm.map((p) => inStrides[p]!);
    const box = collapseCopy(outShape, srcStrides, contiguousStrides(outShape));
    if (box == null) return fallback(args);
    const out = native.backend.makeOutput(outShape, x.dtype);
    runCopy(native, x, 0, out, 0, box);
    return out;
  };
}

/**
 * PadV2 (constant padding) on the addon: the output filled with the constant, then x copied into
 * its window in one strided copy (float32/int32); else `fallback`. Stock wasm took 126 µs to pad
 * [8, 32, 31, 3] by one column (the structural loss's image-gradient backward).
 */
export function nativePad(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    const { paddings, constantValue } = args.attrs as unknown as tf.PadV2Attrs;
    const native = nativeFor(args.backend, 'copy');
    if (native == null || !FOUR_BYTES.has(x.dtype) || tf.util.sizeFromShape(x.shape) === 0) return fallback(args);
    const { backend } = native;
    const outShape = x.shape.map((d, k) => paddings[k]![0] + d + paddings[k]![1]);
    const outStrides = contiguousStrides(outShape);
    const box = collapseCopy(x.shape, contiguousStrides(x.shape), outStrides);
    if (box == null) return fallback(args);
    const out = backend.makeOutput(outShape, x.dtype);
    (backend as unknown as { typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array }).typedArrayFromHeap(out).fill(constantValue);
    const start = paddings.reduce((sum, [before], k) => sum + before * outStrides[k]!, 0);
    runCopy(native, x, 0, out, start, box);
    return out;
  };
}

/** LeakyRelu of float32 on the addon (one pass, threads); else `fallback` (stock wasm: 41 µs for 32 768 floats). */
export function nativeLeakyRelu(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const native = nativeFor(args.backend, 'leakyRelu');
    const x = args.inputs['x'] as tf.TensorInfo;
    const n = tf.util.sizeFromShape(x.shape);
    if (native == null || x.dtype !== 'float32' || n === 0) return fallback(args);
    const { addon, backend } = native;
    const out = backend.makeOutput(x.shape, 'float32');
    const { alpha } = args.attrs as unknown as tf.LeakyReluAttrs;
    addon.leakyRelu(heapF32(backend), offset(backend, x), 0, offset(backend, out), n, alpha, 0);
    return out;
  };
}

/** LeakyRelu's gradient dy → dx over float32 on the addon; null where the addon or the wasm heap is not there. */
export function nativeLeakyReluGrad(backendArg: unknown, x: tf.TensorInfo, dy: tf.TensorInfo, alpha: number): tf.TensorInfo | null {
  const native = nativeFor(backendArg, 'leakyRelu');
  if (native == null) return null;
  const { addon, backend } = native;
  const out = backend.makeOutput(x.shape, 'float32');
  addon.leakyRelu(
    heapF32(backend),
    offset(backend, x),
    offset(backend, dy),
    offset(backend, out),
    tf.util.sizeFromShape(x.shape),
    alpha,
    1,
  );
  return out;
}
