import * as tf from '@tensorflow/tfjs-core';
import { fastBatchMatMul } from './batch-mat-mul';
import { conv2dBackpropFilter } from './conv2d-backprop-filter';
import { conv2dBackpropInput } from './conv2d-backprop-input';
import { cpuFallback } from './cpu-fallback';
import { castShared, identityShared } from './identity';
import { concatFromViews, sliceFromView, splitVFromView } from './slice';
import { loadNative } from '../native/load';
import {
  nativeBatchMatMul,
  nativeBinary,
  nativeConv2D,
  nativeArgMax,
  nativeAvgPool,
  nativeAvgPoolGrad,
  nativeExp,
  nativeFusedConv2D,
  nativeConv2DBackpropFilter,
  nativeConv2DBackpropInput,
  nativeLeakyRelu,
  nativeMax,
  nativePad,
  nativeSoftmax,
  nativeSum,
  nativeTranspose,
  setNativeAddon,
} from './native';
import { resizeNearestNeighborGrad } from './resize-nearest-neighbor-grad';
import { gatherRows, unsortedSegmentSum } from './unsorted-segment-sum';
import { registerAdamWKernel } from '../fused/adamw';
import { registerGroupNormKernels } from '../fused/group-norm';
import { registerLeakyReluGradKernel } from '../fused/leaky-relu';
import { registerRmsNormKernels } from '../fused/rms-norm';
import { registerSumSquaresKernel } from '../fused/sum-squares';
import { registerSwigluKernels } from '../fused/swiglu';

/** Why each wasm kernel is replaced or added (also printed by doctor()). */
export const WASM_KERNEL_PATCHES: Readonly<Record<string, string>> = {
  [tf.Conv2D]: 'XNNPACK ~30-60 GFLOP/s; native im2col + GEMM when the native kernels are loaded, else stock',
  [tf.FusedConv2D]:
    'XNNPACK; native (as Conv2D) with the bias starting the accumulators when the activation is linear and the bias per channel, else stock',
  [tf.Conv2DBackpropFilter]: 'missing in tfjs-backend-wasm; native im2col + GEMM, else a conv of transposed inputs (XNNPACK)',
  [tf.Conv2DBackpropInput]:
    'stock kernel ~3.5 GFLOP/s; native GEMM + col2im, else a conv of the zero-inserted dy with the flipped filter (XNNPACK)',
  [tf.BatchMatMul]: 'transposed/batched matmuls ran at ~2 GFLOP/s; native batched GEMM, else explicit transposes + batch-1 XNNPACK matmuls',
  [tf.Add]:
    'XNNPACK 128-bit SIMD on one thread; native (AVX2/AVX-512, threads) for float32 with one operand trailing the other, else stock',
  [tf.Sub]: 'as Add',
  [tf.Multiply]: 'as Add',
  [tf.RealDiv]: 'as Add',
  [tf.Exp]: 'scalar libm exp on one thread (4 ns per element); native vectorized exp (relative error ~2e-7) with threads, else stock',
  [tf.Sum]: 'one thread, float accumulation; native over leading or trailing axes (double accumulation, threads), else stock',
  [tf.Mean]: 'one thread (70 µs for a batch norm mean of [8,7,7,64]); native as Sum, divided in double, else stock',
  [tf.AvgPoolGrad]:
    'one scalar thread, 19 ns per element; native, separable (rows spread to columns, then summed per window row), threads over the batch, else stock',
  [tf.ArgMax]: 'one scalar thread (150 µs for [512,256]); native over the last axis (vectorized max, then its first index), else stock',
  [tf.AvgPool]:
    'XNNPACK on one thread (50 µs for a 3×3 box filter over [8,32,32,3]); native for whole (valid) windows, separable, else stock',
  [tf.Transpose]: 'stock 42 µs for an attention head split [8,109,4,32]; native strided copy (float32/int32, ≤ 4 merged dims), else stock',
  [tf.PadV2]: 'stock 126 µs to pad [8,32,31,3] by a column; native fill + strided copy (float32/int32), else stock',
  [tf.LeakyRelu]: 'stock 41 µs for 32 768 floats; native one pass with threads (float32), else stock',
  EttLeakyReluGrad:
    "LeakyRelu's gradient as one kernel (native, or a JavaScript loop; also on cpu) instead of Greater + Multiply + Select (Greater against a scalar: 150 µs for 32 768 floats in stock wasm)",
  [tf.Max]: 'one thread (167 µs for [512, 256]); native over trailing axes (vectorized, threads; NaN rows give NaN), else stock',
  [tf.Softmax]: 'XNNPACK on one thread; native over the last axis (vectorized exp, threads), else stock',
  [tf.Identity]:
    'stock copies the tensor, and the gradient tape clones every saved tensor with it; shares the memory (tensors are immutable)',
  [tf.Cast]: 'stock copies even when the dtype does not change; then shares the memory as Identity',
  [tf.Slice]: 'stock copies the whole input out of the heap on every call; copies only the slice (native strided copy for float32/int32)',
  [tf.SplitV]:
    'stock runs that Slice once per part (173 parts of a 570k vector: 0.5-1.9 s); one view, one copy per part (native strided copy for float32/int32)',
  [tf.UnsortedSegmentSum]: 'missing (no embedding gradient); one pass over heap views',
  [tf.GatherV2]: 'about 1 ms for a 344-row embedding lookup; axis 0: one row copy per index from a heap view, else stock',
  [tf.ResizeNearestNeighborGrad]: 'wrong for batch > 1 (and so is cpu); scatterND over the forward index map',
  [tf.MaxPoolGrad]: 'wrong for channels > 1; runs the cpu kernel on copies',
  [tf.Einsum]: 'missing; runs the cpu kernel on copies',
  [tf.DepthwiseConv2dNativeBackpropFilter]: 'missing; runs the cpu kernel on copies',
  [tf.DepthwiseConv2dNativeBackpropInput]: 'missing; runs the cpu kernel on copies',
  EttAdamW:
    "@ettjs/core's AdamW step of a parameter group as one kernel (one pass per parameter, native threads), instead of ~7 kernels per parameter and a dozen passes over the flattened group",
  EttGroupNorm:
    "@ettjs/core's groupNorm (GroupNorm + affine + SiLU) as one pass-fused kernel forward and one backward (also on cpu), instead of ~12 + ~24 kernels",
  EttRMSNorm:
    "@ettjs/core's rmsNorm (LLaMA's RMSNorm) as one kernel forward and one backward (native threads; also on cpu), instead of ~6 + ~20 kernels",
  EttSwiGLU:
    "@ettjs/core's swiGlu (silu(gate)·up) as one kernel forward and one backward (native threads; also on cpu), instead of ~3 + ~12 kernels",
  [tf.Concat]:
    'a TypedArray.subarray view per run (4 096 for a pair of [2048,1,32] on axis 1: 250 µs); one native strided copy per input (float32/int32), else one copyWithin per run in the heap (70-100 µs)',
  EttSumSquares:
    "@ettjs/core's globalNorm as one pass over the gradients summed in float64 (native, vectorized; also on cpu), instead of a square and a sum per gradient",
};

const KEY = Symbol.for('@ettjs/backend.wasmKernelsPatched');
type WithFlag = typeof globalThis & { [KEY]?: string[] };

function replace(config: tf.KernelConfig): void {
  if (tf.getKernel(config.kernelName, 'wasm') != null) tf.unregisterKernel(config.kernelName, 'wasm');
  tf.registerKernel(config);
}

export interface WasmKernelOptions {
  /**
   * Run BatchMatMul and the convolutions on the native kernels shipped in this package (AVX2/AVX-512
   * GEMM, linux-x64) when they load; false keeps every kernel in WASM. Default true; ETT_NATIVE=0 also
   * turns them off. Each call sets it anew.
   */
  native?: boolean;
}

/**
 * Registers the training kernels for the 'wasm' backend only (idempotent; other backends are not
 * touched). Must run after '@tensorflow/tfjs-backend-wasm' is loaded (it registers the stock
 * kernels) and before `setBackend('wasm')` first runs the kernels' setup functions.
 * Returns the names of the kernels it registered.
 */
export function registerWasmTrainingKernels(options: WasmKernelOptions = {}): string[] {
  setNativeAddon(options.native === false ? null : loadNative().addon);
  const g = globalThis as WithFlag;
  if (g[KEY] != null) return [...g[KEY]];
  const stockMatMul = tf.getKernel(tf.BatchMatMul, 'wasm');
  const stockConv = tf.getKernel(tf.Conv2D, 'wasm');
  const stockSlice = tf.getKernel(tf.Slice, 'wasm');
  const stockSplitV = tf.getKernel(tf.SplitV, 'wasm');
  const stockBinary = ([tf.Add, tf.Sub, tf.Multiply, tf.RealDiv] as const).map((name) => [name, tf.getKernel(name, 'wasm')] as const);
  const stockSum = tf.getKernel(tf.Sum, 'wasm');
  const stockCast = tf.getKernel(tf.Cast, 'wasm');
  const stockExp = tf.getKernel(tf.Exp, 'wasm');
  const stockGather = tf.getKernel(tf.GatherV2, 'wasm');
  const stockAvgPoolGrad = tf.getKernel(tf.AvgPoolGrad, 'wasm');
  const stockSoftmax = tf.getKernel(tf.Softmax, 'wasm');
  const stockConcat = tf.getKernel(tf.Concat, 'wasm');
  const stockMax = tf.getKernel(tf.Max, 'wasm');
  const stockMean = tf.getKernel(tf.Mean, 'wasm');
  const stockTranspose = tf.getKernel(tf.Transpose, 'wasm');
  const stockPad = tf.getKernel(tf.PadV2, 'wasm');
  const stockLeakyRelu = tf.getKernel(tf.LeakyRelu, 'wasm');
  const stockArgMax = tf.getKernel(tf.ArgMax, 'wasm');
  const stockFusedConv = tf.getKernel(tf.FusedConv2D, 'wasm');
  const stockAvgPool = tf.getKernel(tf.AvgPool, 'wasm');
  if (
    stockMatMul == null ||
    stockConv == null ||
    stockSlice == null ||
    stockSplitV == null ||
    stockSum == null ||
    stockCast == null ||
    stockExp == null ||
    stockGather == null ||
    stockAvgPoolGrad == null ||
    stockSoftmax == null ||
    stockConcat == null ||
    stockMax == null ||
    stockMean == null ||
    stockTranspose == null ||
    stockPad == null ||
    stockLeakyRelu == null ||
    stockArgMax == null ||
    stockFusedConv == null ||
    stockAvgPool == null ||
    stockBinary.some(([, k]) => k == null)
  ) {
    throw new Error(
      "registerWasmTrainingKernels: the stock wasm kernels are not registered. Import '@tensorflow/tfjs-backend-wasm' first.",
    );
  }
  const wasmKernel = (kernelName: string, kernelFunc: tf.KernelFunc): tf.KernelConfig => ({ kernelName, backendName: 'wasm', kernelFunc });
  const configs: tf.KernelConfig[] = [
    wasmKernel(tf.Conv2DBackpropFilter, nativeConv2DBackpropFilter(conv2dBackpropFilter as unknown as tf.KernelFunc)),
    wasmKernel(tf.Conv2DBackpropInput, nativeConv2DBackpropInput(conv2dBackpropInput as unknown as tf.KernelFunc)),
    // Keep the stock setupFuncs: they cwrap the wasm functions the stock kernelFuncs call.
    { ...stockMatMul, kernelFunc: nativeBatchMatMul(fastBatchMatMul(stockMatMul.kernelFunc)) },
    { ...stockConv, kernelFunc: nativeConv2D(stockConv.kernelFunc) },
    { ...stockFusedConv, kernelFunc: nativeFusedConv2D(stockFusedConv.kernelFunc) },
    ...stockBinary.map(([name, k]) => ({ ...k!, kernelFunc: nativeBinary(name, k!.kernelFunc) })),
    { ...stockSum, kernelFunc: nativeSum(stockSum.kernelFunc) },
    { ...stockMean, kernelFunc: nativeSum(stockMean.kernelFunc, true) },
    { ...stockTranspose, kernelFunc: nativeTranspose(stockTranspose.kernelFunc) },
    { ...stockPad, kernelFunc: nativePad(stockPad.kernelFunc) },
    { ...stockLeakyRelu, kernelFunc: nativeLeakyRelu(stockLeakyRelu.kernelFunc) },
    { ...stockArgMax, kernelFunc: nativeArgMax(stockArgMax.kernelFunc) },
    { ...stockAvgPool, kernelFunc: nativeAvgPool(stockAvgPool.kernelFunc) },
    { ...stockMax, kernelFunc: nativeMax(stockMax.kernelFunc) },
    { ...stockExp, kernelFunc: nativeExp(stockExp.kernelFunc) },
    { ...stockGather, kernelFunc: gatherRows(stockGather.kernelFunc) },
    { ...stockAvgPoolGrad, kernelFunc: nativeAvgPoolGrad(stockAvgPoolGrad.kernelFunc) },
    { ...stockSoftmax, kernelFunc: nativeSoftmax(stockSoftmax.kernelFunc) },
    wasmKernel(tf.Identity, identityShared as unknown as tf.KernelFunc),
    { ...stockCast, kernelFunc: castShared(stockCast.kernelFunc) },
    wasmKernel(tf.Slice, sliceFromView(stockSlice.kernelFunc)),
    wasmKernel(tf.SplitV, splitVFromView(stockSplitV.kernelFunc)),
    { ...stockConcat, kernelFunc: concatFromViews(stockConcat.kernelFunc) },
    wasmKernel(tf.UnsortedSegmentSum, unsortedSegmentSum as unknown as tf.KernelFunc),
    wasmKernel(tf.ResizeNearestNeighborGrad, resizeNearestNeighborGrad as unknown as tf.KernelFunc),
    wasmKernel(tf.MaxPoolGrad, cpuFallback(tf.MaxPoolGrad)),
    wasmKernel(tf.Einsum, cpuFallback(tf.Einsum)),
    wasmKernel(tf.DepthwiseConv2dNativeBackpropFilter, cpuFallback(tf.DepthwiseConv2dNativeBackpropFilter)),
    wasmKernel(tf.DepthwiseConv2dNativeBackpropInput, cpuFallback(tf.DepthwiseConv2dNativeBackpropInput)),
  ];
  configs.forEach(replace);
  const fused = [
    ...registerGroupNormKernels('wasm'),
    ...registerRmsNormKernels('wasm'),
    ...registerSwigluKernels('wasm'),
    registerAdamWKernel('wasm'),
    registerSumSquaresKernel('wasm'),
    registerLeakyReluGradKernel('wasm'),
  ];
  // A wasm backend that is already running skipped the setup of kernels registered after it.
  const running = (tf.engine().registry as Record<string, tf.KernelBackend | undefined>)['wasm'];
  if (running != null) {
    for (const k of [
      stockMatMul,
      stockConv,
      stockSum,
      stockMean,
      stockTranspose,
      stockPad,
      stockLeakyRelu,
      stockArgMax,
      stockFusedConv,
      stockAvgPool,
      stockMax,
      stockExp,
      stockCast,
      stockGather,
      stockAvgPoolGrad,
      stockSoftmax,
      ...stockBinary.map(([, s]) => s!),
    ])
      k.setupFunc?.(running);
  }
  g[KEY] = [...configs.map((c) => c.kernelName), ...fused];
  return [...g[KEY]];
}

/** The kernels registered by {@link registerWasmTrainingKernels} so far (empty before). */
export function patchedWasmKernels(): string[] {
  return [...((globalThis as WithFlag)[KEY] ?? [])];
}
