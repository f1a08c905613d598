import * as tf from '@tensorflow/tfjs-core';
import { fastBatchMatMul } from './batch-mat-mul';
import { conv2dBackpropFilter } from './conv2d-backprop-filter';
import { conv2dBackpropInput } from './conv2d-backprop-input';
import { cpuFallback } from './cpu-fallback';
import { resizeNearestNeighborGrad } from './resize-nearest-neighbor-grad';
import { unsortedSegmentSum } from './unsorted-segment-sum';

/** Why each wasm kernel is replaced or added (also printed by doctor()). */
export const WASM_KERNEL_PATCHES: Readonly<Record<string, string>> = {
  [tf.Conv2DBackpropFilter]: 'missing in tfjs-backend-wasm; conv of transposed inputs (XNNPACK)',
  [tf.Conv2DBackpropInput]: 'stock kernel ~3.5 GFLOP/s; conv of the zero-inserted dy with the flipped filter (XNNPACK)',
  [tf.BatchMatMul]: 'transposed/batched matmuls ran at ~2 GFLOP/s; explicit transposes + batch-1 XNNPACK matmuls',
  [tf.UnsortedSegmentSum]: 'missing (no embedding gradient); scatterND',
  [tf.ResizeNearestNeighborGrad]: 'wrong for batch > 1 (and so is cpu); scatterND over the forward index map',
  [tf.MaxPoolGrad]: 'wrong for channels > 1; runs the cpu kernel on copies',
  [tf.Einsum]: 'missing; runs the cpu kernel on copies',
  [tf.DepthwiseConv2dNativeBackpropFilter]: 'missing; runs the cpu kernel on copies',
  [tf.DepthwiseConv2dNativeBackpropInput]: 'missing; runs the cpu kernel on copies',
};

const KEY = Symbol.for('@ettjs/backend.wasmKernelsPatched');
type WithFlag = typeof globalThis & { [KEY]?: string[] };

function replace(config: tf.KernelConfig): void {
  if (tf.getKernel(config.kernelName, 'wasm') != null) tf.unregisterKernel(config.kernelName, 'wasm');
  tf.registerKernel(config);
}

/**
 * Registers the training kernels for the 'wasm' backend only (idempotent; other backends are not
 * touched). Must run after '@tensorflow/tfjs-backend-wasm' is loaded (it registers the stock
 * kernels) and before `setBackend('wasm')` first runs the kernels' setup functions.
 * Returns the names of the kernels it registered.
 */
export function registerWasmTrainingKernels(): string[] {
  const g = globalThis as WithFlag;
  if (g[KEY] != null) return [...g[KEY]];
  const stockMatMul = tf.getKernel(tf.BatchMatMul, 'wasm');
  if (stockMatMul == null) {
    throw new Error(
      "registerWasmTrainingKernels: the wasm BatchMatMul kernel is not registered. Import '@tensorflow/tfjs-backend-wasm' first.",
    );
  }
  const wasmKernel = (kernelName: string, kernelFunc: tf.KernelFunc): tf.KernelConfig => ({ kernelName, backendName: 'wasm', kernelFunc });
  const configs: tf.KernelConfig[] = [
    wasmKernel(tf.Conv2DBackpropFilter, conv2dBackpropFilter as unknown as tf.KernelFunc),
    wasmKernel(tf.Conv2DBackpropInput, conv2dBackpropInput as unknown as tf.KernelFunc),
    // Keep the stock setupFunc: it cwraps the wasm function the stock kernelFunc calls.
    { ...stockMatMul, kernelFunc: fastBatchMatMul(stockMatMul.kernelFunc) },
    wasmKernel(tf.UnsortedSegmentSum, unsortedSegmentSum as unknown as tf.KernelFunc),
    wasmKernel(tf.ResizeNearestNeighborGrad, resizeNearestNeighborGrad as unknown as tf.KernelFunc),
    wasmKernel(tf.MaxPoolGrad, cpuFallback(tf.MaxPoolGrad)),
    wasmKernel(tf.Einsum, cpuFallback(tf.Einsum)),
    wasmKernel(tf.DepthwiseConv2dNativeBackpropFilter, cpuFallback(tf.DepthwiseConv2dNativeBackpropFilter)),
    wasmKernel(tf.DepthwiseConv2dNativeBackpropInput, cpuFallback(tf.DepthwiseConv2dNativeBackpropInput)),
  ];
  configs.forEach(replace);
  // A wasm backend that is already running skipped the setup of kernels registered after it.
  const running = (tf.engine().registry as Record<string, tf.KernelBackend | undefined>)['wasm'];
  if (running != null) stockMatMul.setupFunc?.(running);
  g[KEY] = configs.map((c) => c.kernelName);
  return [...g[KEY]];
}

/** The kernels registered by {@link registerWasmTrainingKernels} so far (empty before). */
export function patchedWasmKernels(): string[] {
  return [...((globalThis as WithFlag)[KEY] ?? [])];
}
