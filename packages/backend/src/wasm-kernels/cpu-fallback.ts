import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';

interface ReadWriteBackend extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

/**
 * A wasm kernel that runs tfjs-backend-cpu's kernel on copies of its inputs. Used only where wasm
 * lacks a kernel (or has a wrong one) that is rare in training and has no fast composition here:
 * MaxPoolGrad (wasm's is wrong for channels > 1), Einsum, the depthwise conv gradients. Not for
 * ResizeNearestNeighborGrad: the cpu kernel is wrong there too.
 */
export function cpuFallback(kernelName: string): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const wasm = backend as unknown as ReadWriteBackend;
    const cpuKernel = tf.getKernel(kernelName, 'cpu');
    const cpu = tf.findBackend('cpu');
    if (cpuKernel == null || cpu == null) {
      throw new Error(
        `${kernelName} on wasm falls back to tfjs-backend-cpu, which is not registered. Import '@tensorflow/tfjs-backend-cpu'.`,
      );
    }
    const moved: tf.TensorInfo[] = [];
    const copy = (t: tf.TensorInfo): tf.TensorInfo => {
      const info = { dataId: cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype), shape: t.shape, dtype: t.dtype };
      moved.push(info);
      return info;
    };
    // Einsum gets its inputs as an array; every other kernel as a name -> tensor map.
    const cpuInputs = Array.isArray(inputs)
      ? (inputs as tf.TensorInfo[]).map(copy)
      : Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, copy(t as tf.TensorInfo)]));
    try {
      const out = cpuKernel.kernelFunc({ inputs: cpuInputs as unknown as tf.NamedTensorInfoMap, attrs, backend: cpu });
      const outs = Array.isArray(out) ? out : [out];
      const back = outs.map((o) => {
        const values = cpu.readSync(o.dataId);
        cpu.disposeData(o.dataId);
        return wasm.makeOutput(o.shape, o.dtype, undefined, values);
      });
      return Array.isArray(out) ? back : back[0]!;
    } finally {
      for (const m of moved) cpu.disposeData(m.dataId);
    }
  };
}
