import * as tf from '@tensorflow/tfjs-core';
import type { GpuDeviceLike } from './adapter';
import { registerSumSquaresKernel, sumSquaresInputs } from '../fused/sum-squares';
import { registerWebGpuGroupNorm } from './group-norm';

/** Why each webgpu kernel is replaced (also printed by doctor()). */
export const WEBGPU_KERNEL_PATCHES: Readonly<Record<string, string>> = {
  [tf.AddN]:
    'stock binds every input as a storage buffer in one shader: past the device limit (8 by default) the result is silently wrong; sums in chunks that fit',
  EttGroupNorm:
    'GroupNorm + affine (+ SiLU) as 2 WGSL dispatches (statistics per sample and group, then apply) instead of about 12 tfjs ops',
  EttGroupNormGrad: 'its gradient as 5 WGSL dispatches instead of about 24 tfjs ops',
  EttSumSquares: "@ettjs/core's globalNorm as one concat + square + sum instead of a square and a sum per gradient",
  [tf.Conv2DBackpropFilter]:
    'stock is a naive loop per filter element (9x slower at [2,256,256,128] k3 on an H100); im2col by one gather + one matmul, batch-chunked to bound memory',
};

type Backend = tf.KernelBackend & { device: GpuDeviceLike };
/** tfjs-backend-webgpu's way to make a tensor from host values (uploaded when a kernel first reads it). */
type WithTensorInfo = tf.KernelBackend & {
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.backend_util.BackendValues): tf.TensorInfo;
};

function stock(name: string): tf.KernelFunc {
  const k = tf.getKernel(name, 'webgpu');
  if (k == null) throw new Error(`the webgpu backend has no ${name} kernel: import '@tensorflow/tfjs-backend-webgpu' first.`);
  return k.kernelFunc;
}

/** Calls another webgpu kernel and returns its single output. */
function run(name: string, backend: tf.KernelBackend, inputs: unknown, attrs: Record<string, unknown> = {}): tf.TensorInfo {
  return stock(name)({ inputs: inputs as tf.NamedTensorInfoMap, backend, attrs: attrs as tf.NamedAttrMap }) as tf.TensorInfo;
}

/**
 * Runs `f` with a `keep` that collects the intermediate tensors it makes, disposed when `f` ends
 * (Reshape shares its input's data, reference-counted: disposing every kept tensor is safe).
 */
function withTemps<T>(backend: tf.KernelBackend, f: (keep: (t: tf.TensorInfo) => tf.TensorInfo) => T): T {
  const temps: tf.TensorInfo[] = [];
  try {
    return f((t) => {
      temps.push(t);
      return t;
    });
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

/** How many inputs one stock AddN shader may take on this device (one storage buffer is the output). */
export function addNChunk(device: GpuDeviceLike): number {
  return Math.max(2, (device.limits['maxStorageBuffersPerShaderStage'] ?? 8) - 1);
}

function chunkedAddN(stockAddN: tf.KernelFunc): tf.KernelFunc {
  return ({ inputs, backend: b, attrs }) => {
    const backend = b as Backend;
    const list = inputs as unknown as tf.TensorInfo[];
    const chunk = addNChunk(backend.device);
    if (list.length <= chunk) return stockAddN({ inputs, backend, attrs });
    let acc = stockAddN({ inputs: list.slice(0, chunk) as unknown as tf.NamedTensorInfoMap, backend, attrs }) as tf.TensorInfo;
    for (let i = chunk; i < list.length; i += chunk - 1) {
      const next = stockAddN({
        inputs: [acc, ...list.slice(i, i + chunk - 1)] as unknown as tf.NamedTensorInfoMap,
        backend,
        attrs,
      }) as tf.TensorInfo;
      backend.disposeData(acc.dataId);
      acc = next;
    }
    return acc;
  };
}

/**
 * NHWC `x` with zero rows above/below and zero columns left/right (`x` itself when all are 0); a new
 * tensor goes through `keep`, which the caller disposes.
 */
function padSpatial(
  backend: tf.KernelBackend,
  x: tf.TensorInfo,
  rows: [number, number],
  cols: [number, number],
  keep: (t: tf.TensorInfo) => tf.TensorInfo,
): tf.TensorInfo {
  if (rows[0] === 0 && rows[1] === 0 && cols[0] === 0 && cols[1] === 0) return x;
  return keep(run(tf.PadV2, backend, { x }, { paddings: [[0, 0], rows, cols, [0, 0]], constantValue: 0 }));
}

/** Conv2DBackpropFilter's attributes, as tfjs passes them. */
interface FilterGradAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

/**
 * The most im2col elements one gather may write (float32: 4 bytes each), 128 Mi = 512 MiB by
 * default. A batch whose im2col matrix is larger runs in chunks of whole samples; a single sample
 * larger than this falls back to one slice + matmul per filter tap.
 */
export const im2colBudget = { elements: 128 * 2 ** 20 };

/** Row indices into the padded input [N·Hp·Wp, Ci] for one sample's im2col rows, per geometry. */
const im2colRows = new Map<string, Int32Array>();

function sampleRows(hp: number, wp: number, oh: number, ow: number, fh: number, fw: number, sh: number, sw: number): Int32Array {
  const key = `${hp},${wp},${oh},${ow},${fh},${fw},${sh},${sw}`;
  let rows = im2colRows.get(key);
  if (rows == null) {
    rows = new Int32Array(oh * ow * fh * fw);
    let q = 0;
    for (let y = 0; y < oh; y++)
      for (let x = 0; x < ow; x++)
        for (let kh = 0; kh < fh; kh++) for (let kw = 0; kw < fw; kw++) rows[q++] = (y * sh + kh) * wp + x * sw + kw;
    if (im2colRows.size >= 64) im2colRows.delete(im2colRows.keys().next().value!);
    im2colRows.set(key, rows);
  }
  return rows;
}

/**
 * dW[kh, kw, ci, co] = Σ_{n,oh,ow} x_pad[n, oh·sh + kh, ow·sw + kw, ci] · dy[n, oh, ow, co] as one
 * matmul: the im2col matrix [N·OH·OW, KH·KW·Ci] (one gather of the padded input's rows, in HWIO
 * order), transposed, times dy [N·OH·OW, Co]. Three dispatches (pad, gather, matmul) where the stock
 * kernel's naive loop per filter element was 9x slower on an H100 and one slice + matmul per tap
 * cost ~20 dispatches (docs/performance.md, "WebGPU on an NVIDIA H100"). Memory is bounded by {@link im2colBudget}: the
 * batch runs in chunks of whole samples, summed; a sample larger than the budget goes per tap.
 * NCHW falls back to the stock kernel.
 */
function conv2dBackpropFilterByIm2col(stockKernel: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, attrs } = args;
    const backend = args.backend as tf.KernelBackend;
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as FilterGradAttrs;
    if (dataFormat === 'NCHW') return stockKernel(args);
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      filterShape,
      strides,
      1,
      pad,
      dimRoundingMode,
      false,
      'channelsLast',
    );
    const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outChannels: co, outHeight: oh, outWidth: ow } = info;
    const { strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, padInfo } = info;
    const perSample = oh * ow * fh * fw * ci;
    if (perSample > im2colBudget.elements) return conv2dBackpropFilterByTaps(backend, x, dy, info);
    const top = padInfo.top;
    const left = padInfo.left;
    const hp = Math.max(h + top + Math.max(0, padInfo.bottom), (oh - 1) * sh + fh);
    const wp = Math.max(w + left + Math.max(0, padInfo.right), (ow - 1) * sw + fw);
    return withTemps(backend, (keep) => {
      const padded = padSpatial(backend, x, [top, hp - h - top], [left, wp - w - left], keep);
      const table = keep(run(tf.Reshape, backend, { x: padded }, { shape: [n * hp * wp, ci] }));
      const dy2 = keep(run(tf.Reshape, backend, { x: dy }, { shape: [n * oh * ow, co] }));
      const rows = sampleRows(hp, wp, oh, ow, fh, fw, sh, sw);
      const chunk = Math.max(1, Math.min(n, Math.floor(im2colBudget.elements / perSample)));
      let sum: tf.TensorInfo | null = null;
      for (let b0 = 0; b0 < n; b0 += chunk) {
        const nb = Math.min(chunk, n - b0);
        const index = new Int32Array(nb * rows.length);
        for (let b = 0; b < nb; b++) {
          const offset = (b0 + b) * hp * wp;
          for (let i = 0; i < rows.length; i++) index[b * rows.length + i] = rows[i]! + offset;
        }
        const indices = keep((backend as WithTensorInfo).makeTensorInfo([index.length], 'int32', index));
        const gathered = keep(run(tf.GatherV2, backend, { x: table, indices }, { axis: 0, batchDims: 0 }));
        const cols = keep(run(tf.Reshape, backend, { x: gathered }, { shape: [1, nb * oh * ow, fh * fw * ci] }));
        const part = nb === n ? dy2 : keep(run(tf.Slice, backend, { x: dy2 }, { begin: [b0 * oh * ow, 0], size: [nb * oh * ow, co] }));
        const rhs = keep(run(tf.Reshape, backend, { x: part }, { shape: [1, nb * oh * ow, co] }));
        const prod = keep(run(tf.BatchMatMul, backend, { a: cols, b: rhs }, { transposeA: true, transposeB: false }));
        sum = sum == null ? prod : keep(run(tf.Add, backend, { a: sum, b: prod }));
      }
      return run(tf.Reshape, backend, { x: sum! }, { shape: [fh, fw, ci, co] });
    });
  };
}

/**
 * The per-tap form of the same sum, for samples too large for one im2col gather: per filter tap, a
 * strided slice of the padded input ([N·OH·OW, Ci]) times dy ([N·OH·OW, Co]) with the first operand
 * transposed; the taps' [Ci, Co] blocks stacked in HWIO order. Peak extra memory is one input-sized
 * slice.
 */
function conv2dBackpropFilterByTaps(
  backend: tf.KernelBackend,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
): tf.TensorInfo {
  const { batchSize: n, inChannels: ci, outChannels: co, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  const { filterHeight: fh, filterWidth: fw, padInfo } = info;
  return withTemps(backend, (keep) => {
    const m = n * oh * ow;
    const dy2 = keep(run(tf.Reshape, backend, { x: dy }, { shape: [1, m, co] }));
    const padded = padSpatial(backend, x, [padInfo.top, Math.max(0, padInfo.bottom)], [padInfo.left, Math.max(0, padInfo.right)], keep);
    const blocks: tf.TensorInfo[] = [];
    for (let kh = 0; kh < fh; kh++) {
      for (let kw = 0; kw < fw; kw++) {
        const whole = kh === 0 && kw === 0 && sh === 1 && sw === 1 && padded.shape[1] === oh && padded.shape[2] === ow;
        const tap = whole
          ? padded
          : keep(
              run(
                tf.StridedSlice,
                backend,
                { x: padded },
                {
                  begin: [0, kh, kw, 0],
                  end: [n, kh + (oh - 1) * sh + 1, kw + (ow - 1) * sw + 1, ci],
                  strides: [1, sh, sw, 1],
                  beginMask: 0,
                  endMask: 0,
                  ellipsisMask: 0,
                  newAxisMask: 0,
                  shrinkAxisMask: 0,
                },
              ),
            );
        const cols = keep(run(tf.Reshape, backend, { x: tap }, { shape: [1, m, ci] }));
        const block = keep(run(tf.BatchMatMul, backend, { a: cols, b: dy2 }, { transposeA: true, transposeB: false }));
        blocks.push(block);
      }
    }
    const stacked = blocks.length === 1 ? blocks[0]! : keep(run(tf.Concat, backend, blocks, { axis: 1 }));
    return run(tf.Reshape, backend, { x: stacked }, { shape: [fh, fw, ci, co] });
  });
}

/** EttSumSquares (@ettjs/core's globalNorm): every input flattened into one vector (one concat), one square, one sum. */
function sumSquaresByConcat({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend }): tf.TensorInfo {
  const list = sumSquaresInputs(inputs);
  return withTemps(backend, (keep) => {
    const flat = list.map((t) => keep(run(tf.Reshape, backend, { x: t }, { shape: [tf.util.sizeFromShape(t.shape)] })));
    const joined = flat.length === 1 ? flat[0]! : keep(run(tf.Concat, backend, flat, { axis: 0 }));
    const squared = keep(run(tf.Square, backend, { x: joined }));
    return run(tf.Sum, backend, { x: squared }, { axis: [0], keepDims: false });
  });
}

const KEY = Symbol.for('@ettjs/backend.webgpuKernelsPatched');

/** Registers the webgpu kernel fixes (idempotent); returns the kernel names. */
export function registerWebGpuTrainingKernels(): string[] {
  const g = globalThis as typeof globalThis & { [KEY]?: string[] };
  if (g[KEY] != null) return [...g[KEY]];
  const configs: tf.KernelConfig[] = [
    { kernelName: tf.AddN, backendName: 'webgpu', kernelFunc: chunkedAddN(stock(tf.AddN)) },
    {
      kernelName: tf.Conv2DBackpropFilter,
      backendName: 'webgpu',
      kernelFunc: conv2dBackpropFilterByIm2col(stock(tf.Conv2DBackpropFilter)),
    },
  ];
  for (const c of configs) {
    tf.unregisterKernel(c.kernelName, 'webgpu');
    tf.registerKernel(c);
  }
  g[KEY] = [
    ...configs.map((c) => c.kernelName),
    ...registerWebGpuGroupNorm(),
    registerSumSquaresKernel('webgpu', sumSquaresByConcat as unknown as tf.KernelFunc),
  ];
  return [...g[KEY]];
}

/** The kernels registered by {@link registerWebGpuTrainingKernels} so far (empty before). */
export function patchedWebGpuKernels(): string[] {
  return [...((globalThis as typeof globalThis & { [KEY]?: string[] })[KEY] ?? [])];
}
