import type * as tf from '@tensorflow/tfjs-core';

/**
 * Identity without a copy. tfjs's gradient tape clones every tensor an op saves for its backward
 * pass through this kernel (about 2 700 clones in one stage-2 ETT step), and the stock wasm kernel
 * copies the whole tensor each time. Tensors are immutable, so the output can share the input's
 * memory with one more reference, as the cpu backend's Identity and wasm's own Reshape do.
 */
export function identityShared(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const x = args.inputs['x'] as tf.TensorInfo;
  (args.backend as { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

/**
 * Cast that shares memory when the dtype does not change (a float32 mask cast to float32: eight
 * per stage-2 ETT step, each a full copy in the stock kernel); every real conversion runs `stock`.
 */
export function castShared(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
    return x.dtype === dtype ? identityShared(args) : stock(args);
  };
}
