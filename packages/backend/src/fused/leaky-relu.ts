import * as tf from '@tensorflow/tfjs-core';
import { nativeLeakyReluGrad } from '../wasm-kernels/native';
import { host } from './host';

// LeakyReLU's gradient as one kernel on wasm and cpu. tfjs-core's gradient is
// where(greater(x, 0), dy, mul(dy, α)): three kernels and three passes, and stock wasm's Greater
// against a scalar alone took 150 µs for 32 768 floats (the PatchGAN critic runs nine LeakyReLU
// backward passes per stage-2 step). The gradient registered here runs this kernel where the active
// backend has it and tfjs-core's composition everywhere else, with the same values: dy where
// x > 0, α·dy elsewhere (x = 0 and NaN included).

/** Kernel name. */
export const LEAKY_RELU_GRAD = 'EttLeakyReluGrad';

const leakyReluGradKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
  const { alpha } = attrs as unknown as { alpha: number };
  if (!tf.util.arraysEqual(dy.shape, x.shape))
    throw new Error(`${LEAKY_RELU_GRAD}: dy [${dy.shape}] and x [${x.shape}] must have one shape`);
  for (const t of [dy, x]) if (t.dtype !== 'float32') throw new Error(`${LEAKY_RELU_GRAD}: float32 only, got ${t.dtype}`);
  const n = tf.util.sizeFromShape(x.shape);
  const native = n > 0 ? nativeLeakyReluGrad(backend, x, dy, alpha) : null;
  if (native != null) return native;
  const io = host(backend);
  const out = io.outputs([x.shape]);
  const [dx] = out.views() as [Float32Array];
  const xs = io.read(x);
  const g = io.read(dy);
  const a = Math.fround(alpha);
  for (let i = 0; i < n; i++) dx[i] = xs[i]! > 0 ? g[i]! : Math.fround(a * g[i]!);
  return out.infos[0]!;
};

/** tfjs-core's LeakyRelu gradient, for the backends without the kernel and for dtypes other than float32. */
function stockGradient(dy: tf.Tensor, x: tf.Tensor, alpha: number): tf.Tensor {
  return tf.where(tf.greater(x, 0), dy, tf.mul(dy, alpha));
}

function hasKernel(): boolean {
  return tf.getKernel(LEAKY_RELU_GRAD, tf.getBackend()) != null;
}

/** The kernel for `backendName`; the LeakyRelu gradient (and the kernel's own, for second derivatives) is registered once. */
export function registerLeakyReluGradKernel(backendName: 'wasm' | 'cpu'): string {
  if (tf.getKernel(LEAKY_RELU_GRAD, backendName) == null)
    tf.registerKernel({ kernelName: LEAKY_RELU_GRAD, backendName, kernelFunc: leakyReluGradKernel });
  const G = Symbol.for('@ettjs/backend.leakyReluGradient');
  const g = globalThis as typeof globalThis & { [G]?: true };
  if (g[G] == null) {
    g[G] = true;
    tf.registerGradient({
      kernelName: tf.LeakyRelu,
      inputsToSave: ['x'],
      gradFunc: (dy, saved, attrs) => {
        const x = saved[0]!;
        const { alpha } = attrs as unknown as tf.LeakyReluAttrs;
        const d = dy as tf.Tensor;
        return {
          x: () =>
            hasKernel() && x.dtype === 'float32' && d.dtype === 'float32'
              ? (tf.engine().runKernel(LEAKY_RELU_GRAD, { dy: d, x }, { alpha } as unknown as tf.NamedAttrMap) as tf.Tensor)
              : stockGradient(d, x, alpha),
        };
      },
    });
    // dx is linear in dy (with x's mask), and x only selects: its own derivative is zero almost everywhere.
    tf.registerGradient({
      kernelName: LEAKY_RELU_GRAD,
      inputsToSave: ['x'],
      gradFunc: (ddx, saved, attrs) => {
        const x = saved[0]!;
        const { alpha } = attrs as unknown as { alpha: number };
        return {
          dy: () =>
            tf.engine().runKernel(LEAKY_RELU_GRAD, { dy: ddx as tf.Tensor, x }, { alpha } as unknown as tf.NamedAttrMap) as tf.Tensor,
          x: () => tf.zerosLike(x),
        };
      },
    });
  }
  return LEAKY_RELU_GRAD;
}
