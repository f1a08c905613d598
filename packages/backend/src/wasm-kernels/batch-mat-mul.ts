import * as tf from '@tensorflow/tfjs-core';

// tfjs-backend-wasm 4.22 runs BatchMatMul on XNNPACK only when both operands have batch 1 and
// neither is transposed (~60 GFLOP/s on 2 threads); every other case — transposeA/B, batched
// operands, a rank-3 activation times a 2-D weight — goes to a plain loop at ~2 GFLOP/s
// (batch_mat_mul_impl.cc). Every matMul gradient transposes, and attention is batched, so training
// spent most of its time there. This kernel only ever feeds the fast path:
//  - transposes become explicit transposes (cheap, memory bound);
//  - a broadcast 2-D weight ([batch, m, k] x [1, k, n]) becomes one [1, batch*m, k] matmul;
//  - a true batch runs as `batch` fast 2-D matmuls on views into the operands' wasm memory.

/** The parts of tfjs-backend-wasm 4.22's BackendWasm this kernel uses. Checked by `supportsViews`. */
interface WasmInternals extends tf.KernelBackend {
  wasm: {
    cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
    tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
  };
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

type WasmBatchMatMul = (...args: unknown[]) => void;
const cwrapped = new WeakMap<object, WasmBatchMatMul>();

function supportsViews(backend: tf.KernelBackend): backend is WasmInternals {
  const b = backend as Partial<WasmInternals>;
  return (
    typeof b.wasm?.cwrap === 'function' &&
    typeof b.wasm.tfjs?.registerTensor === 'function' &&
    typeof b.wasm.tfjs?.disposeData === 'function' &&
    typeof b.dataIdMap?.get === 'function' &&
    typeof b.dataIdNextNumber === 'number'
  );
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/**
 * out[g] = a[g or 0] @ b[g or 0] for g < batch, each as a batch-1 call of the wasm BatchMatMul
 * function on tensor ids registered (with the C++ side only) at offsets inside a, b and out. The ids
 * are unregistered right after, which also frees the XNNPACK operator cached on b's id.
 */
function viewBatches(backend: WasmInternals, a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  let fn = cwrapped.get(backend);
  if (fn == null) {
    fn = backend.wasm.cwrap(tf.BatchMatMul, null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']);
    cwrapped.set(backend, fn);
  }
  const [ga, m, k] = a.shape;
  const [gb, , n] = b.shape;
  const batch = Math.max(ga, gb);
  const out = backend.makeOutput([batch, m, n], 'float32');
  const aOffset = backend.dataIdMap.get(a.dataId)!.memoryOffset;
  const bOffset = backend.dataIdMap.get(b.dataId)!.memoryOffset;
  const outOffset = backend.dataIdMap.get(out.dataId)!.memoryOffset;
  const aShape = shapeBytes([1, m, k]);
  const bShape = shapeBytes([1, k, n]);
  const { tfjs } = backend.wasm;
  for (let g = 0; g < batch; g++) {
    const aId = backend.dataIdNextNumber++;
    const bId = backend.dataIdNextNumber++;
    const outId = backend.dataIdNextNumber++;
    tfjs.registerTensor(aId, m * k, aOffset + (ga === 1 ? 0 : g * m * k * 4));
    tfjs.registerTensor(bId, k * n, bOffset + (gb === 1 ? 0 : g * k * n * 4));
    tfjs.registerTensor(outId, m * n, outOffset + g * m * n * 4);
    try {
      fn(aId, aShape, 3, bId, bShape, 3, false, false, outId);
    } finally {
      tfjs.disposeData(aId);
      tfjs.disposeData(bId);
      tfjs.disposeData(outId);
    }
  }
  return tf.engine().makeTensorFromTensorInfo(out) as tf.Tensor3D;
}

/** Wraps the stock wasm BatchMatMul kernel function (its setupFunc must stay registered with it). */
export function fastBatchMatMul(original: tf.KernelFunc): tf.KernelFunc {
  const runOriginal = (backend: tf.KernelBackend, a: tf.Tensor, b: tf.Tensor): tf.Tensor =>
    tf
      .engine()
      .makeTensorFromTensorInfo(original({ inputs: { a, b }, backend, attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo);

  return (args) => {
    const a = args.inputs['a'] as tf.Tensor;
    const b = args.inputs['b'] as tf.Tensor;
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.rank < 2 || b.rank < 2 || a.size === 0 || b.size === 0) return original(args);
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const ga = tf.util.sizeFromShape(a.shape.slice(0, -2));
    const gb = tf.util.sizeFromShape(b.shape.slice(0, -2));
    // Batch dims that broadcast other than "equal" or "one side is 1" keep the stock kernel.
    if (ga !== gb && ga !== 1 && gb !== 1) return original(args);
    const backend = args.backend as tf.KernelBackend;
    return tf.tidy(() => {
      const [ar, ac] = a.shape.slice(-2) as [number, number];
      const [br, bc] = b.shape.slice(-2) as [number, number];
      let a3 = tf.reshape(a, [ga, ar, ac]) as tf.Tensor3D;
      let b3 = tf.reshape(b, [gb, br, bc]) as tf.Tensor3D;
      if (transposeA) a3 = tf.transpose(a3, [0, 2, 1]);
      if (transposeB) b3 = tf.transpose(b3, [0, 2, 1]);
      const [, m, k] = a3.shape;
      const n = b3.shape[2];
      if (k !== b3.shape[1]) {
        throw new Error(
          `Error in matMul: inner shapes (${k}) and (${b3.shape[1]}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
        );
      }
      let out: tf.Tensor;
      if (gb === 1) {
        out = runOriginal(backend, tf.reshape(a3, [1, ga * m, k]), b3);
      } else if (supportsViews(backend)) {
        out = viewBatches(backend, a3, b3);
      } else {
        out = runOriginal(backend, a3, b3);
      }
      return tf.reshape(out, [...outer, m, n]);
    });
  };
}
