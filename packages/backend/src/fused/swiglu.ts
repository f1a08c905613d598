import * as tf from '@tensorflow/tfjs-core';
import { nativeSwiglu } from '../wasm-kernels/native';
import { host } from './host';

// SwiGLU's gating, silu(gate) · up, as one kernel forward and one backward for the wasm and cpu
// backends (in tfjs ops: sigmoid and two products forward, about a dozen kernels backward, each a
// pass over the LM's [tokens, intermediate] activations). On the native addon when the wasm backend
// runs with it, else JavaScript loops. `swiGlu` in @ettjs/core runs this kernel when the active
// backend has it and the tfjs ops everywhere else.

/** Kernel names (also in @ettjs/core's `swiGlu`, which must stay in step). */
export const SWIGLU = 'EttSwiGLU';
export const SWIGLU_GRAD = 'EttSwiGLUGrad';

function checkShapes(gate: tf.TensorInfo, up: tf.TensorInfo): number {
  if (!tf.util.arraysEqual(gate.shape, up.shape))
    throw new Error(`${SWIGLU}: gate [${gate.shape}] and up [${up.shape}] must have one shape`);
  for (const t of [gate, up]) if (t.dtype !== 'float32') throw new Error(`${SWIGLU}: float32 only, got ${t.dtype}`);
  return tf.util.sizeFromShape(gate.shape);
}

const swigluKernel: tf.KernelFunc = ({ inputs, backend }) => {
  const { gate, up } = inputs as { gate: tf.TensorInfo; up: tf.TensorInfo };
  const n = checkShapes(gate, up);
  const native = n > 0 ? nativeSwiglu(backend, { gate, up, dy: null }) : null;
  if (native != null) return native[0]!;
  const io = host(backend);
  const out = io.outputs([gate.shape]);
  const [y] = out.views() as [Float32Array];
  const g = io.read(gate);
  const u = io.read(up);
  for (let i = 0; i < n; i++) y[i] = (g[i]! / (1 + Math.exp(-g[i]!))) * u[i]!;
  return out.infos[0]!;
};

const swigluGradKernel: tf.KernelFunc = ({ inputs, backend }) => {
  const { gate, up, dy } = inputs as { gate: tf.TensorInfo; up: tf.TensorInfo; dy: tf.TensorInfo };
  const n = checkShapes(gate, up);
  const native = n > 0 ? nativeSwiglu(backend, { gate, up, dy }) : null;
  if (native != null) return native;
  const io = host(backend);
  const out = io.outputs([gate.shape, gate.shape]);
  const [dg, du] = out.views() as [Float32Array, Float32Array];
  const g = io.read(gate);
  const u = io.read(up);
  const d = io.read(dy);
  // d/dg (g·σ(g)) = σ(g)·(1 + g·(1 − σ(g)))
  for (let i = 0; i < n; i++) {
    const s = 1 / (1 + Math.exp(-g[i]!));
    du[i] = d[i]! * g[i]! * s;
    dg[i] = d[i]! * u[i]! * s * (1 + g[i]! * (1 - s));
  }
  return out.infos;
};

/** The SwiGLU kernels for `backendName` ('wasm' or 'cpu'); the gradient is registered once. */
export function registerSwigluKernels(backendName: 'wasm' | 'cpu'): string[] {
  for (const [kernelName, kernelFunc] of [
    [SWIGLU, swigluKernel],
    [SWIGLU_GRAD, swigluGradKernel],
  ] as const) {
    if (tf.getKernel(kernelName, backendName) == null) tf.registerKernel({ kernelName, backendName, kernelFunc });
  }
  if (tf.getGradient(SWIGLU) == null) {
    tf.registerGradient({
      kernelName: SWIGLU,
      inputsToSave: ['gate', 'up'],
      gradFunc: (dy, saved) => {
        const [gate, up] = saved as [tf.Tensor, tf.Tensor];
        // One backward kernel gives both (see registerGroupNormGradient).
        const [dgate, dup] = tf.engine().runKernel(SWIGLU_GRAD, { gate, up, dy: dy as tf.Tensor }, {}) as tf.Tensor[];
        return { gate: () => dgate!, up: () => dup! };
      },
    });
  }
  return [SWIGLU, SWIGLU_GRAD];
}
