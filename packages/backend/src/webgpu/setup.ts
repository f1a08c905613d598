import type * as tf from '@tensorflow/tfjs-core';
import type { DawnModule, FoundAdapter, GpuAdapterLike, GpuDeviceLike, GpuLike } from './adapter';

/** A WebGPU error that the device reported outside any error scope (validation, out of memory, internal, device lost). */
export class WebGpuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebGpuError';
  }
}

interface WebGpuBackendLike extends tf.KernelBackend {
  device: GpuDeviceLike;
  tensorMap?: { get(dataId: object): { values: unknown; dtype: string } | undefined };
}

const KEY = Symbol.for('@ettjs/backend.webgpuErrors');
interface ErrorState {
  pending: string[];
}
function errorState(): ErrorState {
  const g = globalThis as typeof globalThis & { [KEY]?: ErrorState };
  g[KEY] ??= { pending: [] };
  return g[KEY];
}

/** Throws (once) the GPU errors reported since the last check. */
export function throwPendingWebGpuErrors(): void {
  const s = errorState();
  if (s.pending.length === 0) return;
  const errors = s.pending.splice(0);
  throw new WebGpuError(
    `WebGPU reported ${errors.length} error(s); results computed since the last read are not reliable:\n  - ${errors.join('\n  - ')}`,
  );
}

/**
 * Makes `navigator.gpu` (and the WebGPU globals such as GPUBufferUsage) exist for
 * @tensorflow/tfjs-backend-webgpu, which checks for them when its module loads. Its requestAdapter
 * hands out the adapter initBackend chose, and the device requested from it gets the adapter's full
 * storage-buffer limit and error hooks: every uncaptured error and a device loss are recorded and
 * thrown by the next read of a tensor.
 */
export function installNavigatorGpu(dawn: DawnModule, found: FoundAdapter): void {
  for (const [k, v] of Object.entries(dawn.globals)) {
    if (!(k in globalThis)) Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
  }
  const adapter: GpuAdapterLike = {
    info: found.adapter.info,
    limits: found.adapter.limits,
    get features() {
      return (found.adapter as unknown as { features: unknown }).features;
    },
    async requestDevice(descriptor = {}) {
      const limits = found.adapter.limits;
      const device = await found.adapter.requestDevice({
        ...descriptor,
        requiredLimits: {
          ...descriptor.requiredLimits,
          maxStorageBuffersPerShaderStage: limits['maxStorageBuffersPerShaderStage'] ?? 8,
        },
      });
      const s = errorState();
      device.onuncapturederror = (ev) => {
        s.pending.push(ev.error.message);
      };
      void device.lost.then((info) => {
        if (info.reason !== 'destroyed') s.pending.push(`device lost: ${info.message}`);
      });
      return device;
    },
  } as GpuAdapterLike;
  const gpu: GpuLike & Record<string, unknown> = {
    // Holds Dawn's instance for as long as navigator.gpu lives.
    dawnInstance: found.gpu,
    requestAdapter: async () => adapter,
    getPreferredCanvasFormat: () => 'rgba8unorm',
  };
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav == null) {
    Object.defineProperty(globalThis, 'navigator', {
      value: { gpu, userAgent: `Node.js/${process.version}` },
      configurable: true,
      writable: true,
    });
  } else {
    Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, writable: true });
  }
}

/**
 * Wraps the running backend's reads: `read` (data(), array()) throws the GPU errors recorded since
 * the last read; `readSync` (dataSync(), arraySync()) says plainly that Node cannot read a GPU buffer
 * synchronously (tfjs's way needs OffscreenCanvas), instead of failing inside tfjs.
 */
export function guardWebGpuReads(backend: tf.KernelBackend): void {
  const b = backend as WebGpuBackendLike & { [KEY]?: true };
  if (b[KEY]) return;
  b[KEY] = true;
  const read = b.read.bind(b);
  b.read = async (dataId: object) => {
    throwPendingWebGpuErrors();
    const values = await read(dataId);
    await b.device.queue.onSubmittedWorkDone();
    throwPendingWebGpuErrors();
    return values;
  };
  const readSync = b.readSync.bind(b);
  b.readSync = (dataId: object) => {
    throwPendingWebGpuErrors();
    const data = b.tensorMap?.get(dataId);
    if (
      data != null &&
      data.values == null &&
      data.dtype !== 'string' &&
      typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined'
    ) {
      throw new WebGpuError(
        'dataSync()/arraySync() cannot read a GPU tensor in Node: WebGPU maps buffers asynchronously only. Use `await tensor.data()` / `await tensor.array()`, or run this code on the wasm backend.',
      );
    }
    return readSync(dataId);
  };
}

/** The parts of tfjs-backend-webgpu 4.22's WebGPUBackend that the upload path touches. */
interface UploadingBackend {
  queue?: { writeBuffer(buffer: unknown, offset: number, data: ArrayBufferLike, dataOffset: number, size: number): void };
  bufferManager?: { acquireBuffer(size: number, usage: number): unknown };
  tensorMap?: { get(dataId: object): { values: unknown; dtype: string; shape: number[]; resource: unknown } | undefined };
  uploadToGPU?: (dataId: object) => void;
}

const UPLOADS = Symbol.for('@ettjs/backend.webgpuUploads');

/**
 * Uploads a tensor's CPU values with one `queue.writeBuffer` into a pooled storage buffer. Stock
 * tfjs-backend-webgpu 4.22 creates, maps and later destroys a staging buffer for every upload —
 * every scalar operand (`tf.mul(x, 0.5)`), every tensor made from values — and on Dawn's Vulkan
 * backend that costs about 0.7 ms each (NVIDIA H100; a whole op is ~0.05 ms), which tripled the
 * stage-2 ETT step (docs/performance.md, "WebGPU on an NVIDIA H100"). Ordering is safe: a buffer taken from the pool is
 * referenced by no command recorded since the last submit (tfjs returns buffers to the pool only
 * after the submit that used them), and writeBuffer lands before that encoder's commands run.
 * Other dtypes and empty tensors keep the stock path. Returns whether the patch is in place.
 */
export function fastWebGpuUploads(backend: tf.KernelBackend): boolean {
  const b = backend as tf.KernelBackend & UploadingBackend & { [UPLOADS]?: true };
  if (b[UPLOADS]) return true;
  const { queue, bufferManager, tensorMap, uploadToGPU } = b;
  const usage = (globalThis as unknown as { GPUBufferUsage?: Record<string, number> }).GPUBufferUsage;
  if (queue?.writeBuffer == null || bufferManager == null || tensorMap == null || uploadToGPU == null || usage == null) return false;
  const stock = uploadToGPU.bind(b);
  const storage = (usage['STORAGE'] ?? 0) | (usage['COPY_SRC'] ?? 0) | (usage['COPY_DST'] ?? 0);
  b.uploadToGPU = (dataId: object) => {
    const data = tensorMap.get(dataId);
    const n = data == null ? 0 : data.shape.reduce((a, d) => a * d, 1);
    if (data == null || data.resource != null || data.values == null || n === 0) return stock(dataId);
    let values: Float32Array | Int32Array;
    if (data.dtype === 'float32')
      values = data.values instanceof Float32Array ? data.values : Float32Array.from(data.values as ArrayLike<number>);
    else if (data.dtype === 'int32' || data.dtype === 'bool')
      values = data.values instanceof Int32Array ? data.values : Int32Array.from(data.values as ArrayLike<number>);
    else return stock(dataId);
    if (values.length !== n) return stock(dataId);
    const buffer = bufferManager.acquireBuffer(4 * n, storage);
    queue.writeBuffer(buffer, 0, values.buffer, values.byteOffset, 4 * n);
    data.values = null;
    data.resource = buffer;
  };
  b[UPLOADS] = true;
  return true;
}
