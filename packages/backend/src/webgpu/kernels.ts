import * as tf from '@tensorflow/tfjs-core';
import type { GpuDeviceLike } from './adapter';

/** Why each webgpu kernel is replaced (also printed by doctor()). */
export const WEBGPU_KERNEL_PATCHES: Readonly<Record<string, string>> = {
  [tf.AddN]:
    'stock binds every input as a storage buffer in one shader: past the device limit (8 by default) the result is silently wrong; sums in chunks that fit',
  [tf.Conv2DBackpropFilter]: 'stock is a naive loop per filter element (2.5x slower); one strided slice + matmul per filter tap',
};

type Backend = tf.KernelBackend & { device: GpuDeviceLike };

function stock(name: string): tf.KernelFunc {
  const k = tf.getKernel(name, 'webgpu');
  if (k == null) throw new Error(`the webgpu backend has no ${name} kernel: import '@tensorflow/tfjs-backend-webgpu' first.`);
  return k.kernelFunc;
}

/** Calls another webgpu kernel and returns its single output. */
function run(name: string, backend: tf.KernelBackend, inputs: unknown, attrs: Record<string, unknown> = {}): tf.TensorInfo {
  return stock(name)({ inputs: inputs as tf.NamedTensorInfoMap, backend, attrs: attrs as tf.NamedAttrMap }) as tf.TensorInfo;
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
 * dW[kh, kw, ci, co] = Σ_{n,oh,ow} x_pad[n, oh·sh + kh, ow·sw + kw, ci] · dy[n, oh, ow, co]: per filter
 * tap, a strided slice of the padded input ([N·OH·OW, Ci]) times dy ([N·OH·OW, Co]) with the first
 * operand transposed; the taps' [Ci, Co] blocks stacked in HWIO order. Peak extra memory is one
 * input-sized slice (not the K·K-times larger im2col matrix). NCHW falls back to the stock kernel.
 */
function conv2dBackpropFilterByTaps(stockKernel: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { inputs, attrs } = args;
    const backend = args.backend as tf.KernelBackend;
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
      strides: [number, number] | number;
      pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
      dataFormat: 'NHWC' | 'NCHW';
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
      filterShape: [number, number, number, number];
    };
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
    const { batchSize: n, inChannels: ci, outChannels: co, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
    const { filterHeight: fh, filterWidth: fw, padInfo } = info;
    const temps: tf.TensorInfo[] = [];
    const keep = (t: tf.TensorInfo) => {
      temps.push(t);
      return t;
    };
    try {
      const m = n * oh * ow;
      const dy2 = keep(run(tf.Reshape, backend, { x: dy }, { shape: [1, m, co] }));
      const padded =
        padInfo.top === 0 && padInfo.bottom === 0 && padInfo.left === 0 && padInfo.right === 0
          ? x
          : keep(
              run(
                tf.PadV2,
                backend,
                { x },
                {
                  paddings: [
                    [0, 0],
                    [padInfo.top, Math.max(0, padInfo.bottom)],
                    [padInfo.left, Math.max(0, padInfo.right)],
                    [0, 0],
                  ],
                  constantValue: 0,
                },
              ),
            );
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
    } finally {
      // Reshape shares its input's data (reference-counted): disposing every temp is safe.
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
}

const KEY = Symbol.for('@ettjs/backend.webgpuKernelsPatched');

/** Registers the webgpu kernel fixes (idempotent); returns the kernel names. */
export function registerWebGpuTrainingKernels(): string[] {
  const g = globalThis as typeof globalThis & { [KEY]?: string[] };
  if (g[KEY] != null) return [...g[KEY]];
  const configs: tf.KernelConfig[] = [
    { kernelName: tf.AddN, backendName: 'webgpu', kernelFunc: chunkedAddN(stock(tf.AddN)) },
    { kernelName: tf.Conv2DBackpropFilter, backendName: 'webgpu', kernelFunc: conv2dBackpropFilterByTaps(stock(tf.Conv2DBackpropFilter)) },
  ];
  for (const c of configs) {
    tf.unregisterKernel(c.kernelName, 'webgpu');
    tf.registerKernel(c);
  }
  g[KEY] = configs.map((c) => c.kernelName);
  return [...g[KEY]];
}

/** The kernels registered by {@link registerWebGpuTrainingKernels} so far (empty before). */
export function patchedWebGpuKernels(): string[] {
  return [...((globalThis as typeof globalThis & { [KEY]?: string[] })[KEY] ?? [])];
}
