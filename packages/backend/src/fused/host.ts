import * as tf from '@tensorflow/tfjs-core';

// Float32 tensor data the CPU can address, on the wasm backend (views of its heap) and on cpu.

/** Reads and writes float32 tensor data on a backend whose data the CPU can address. */
export interface Host {
  read(t: tf.TensorInfo): Float32Array;
  /** Allocates outputs first (on wasm a new allocation can move the heap), then returns views of them. */
  outputs(shapes: number[][]): { infos: tf.TensorInfo[]; views: () => Float32Array[] };
}

interface WasmLike extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}
interface CpuLike extends tf.KernelBackend {
  data: { get(dataId: object): { values: tf.backend_util.BackendValues } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

export function host(backend: unknown): Host {
  const b = backend as Partial<WasmLike & CpuLike>;
  if (typeof b.typedArrayFromHeap === 'function' && typeof b.makeOutput === 'function') {
    const w = b as WasmLike;
    return {
      read: (t) => w.typedArrayFromHeap(t),
      outputs: (shapes) => {
        const infos = shapes.map((s) => w.makeOutput(s, 'float32'));
        return { infos, views: () => infos.map((i) => w.typedArrayFromHeap(i)) };
      },
    };
  }
  const c = b as CpuLike;
  return {
    read: (t) => c.data.get(t.dataId).values as Float32Array,
    outputs: (shapes) => {
      const arrays = shapes.map((s) => new Float32Array(tf.util.sizeFromShape(s)));
      const infos = shapes.map((s, i) => c.makeTensorInfo(s, 'float32', arrays[i]));
      return { infos, views: () => arrays };
    },
  };
}
