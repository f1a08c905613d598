import * as tf from '@tensorflow/tfjs-core';
import { nativeRmsNorm } from '../wasm-kernels/native';
import { host } from './host';

// RMSNorm (LLaMA's, over the last axis, with a weight) as one kernel forward and one backward, for
// the wasm and cpu backends. In tfjs ops it is six kernels forward (square, mean, add, rsqrt, two
// products) and about twenty backward; the LM of a stage-2 ETT step runs five. On the native addon
// when the wasm backend runs with it, else JavaScript loops with float64 row sums. `rmsNorm` in
// @ettjs/core runs this kernel when the active backend has it and the tfjs ops everywhere else.

/** Kernel names (also in @ettjs/core's `rmsNorm`, which must stay in step). */
export const RMS_NORM = 'EttRMSNorm';
export const RMS_NORM_GRAD = 'EttRMSNormGrad';

/** Checks x [..., C] float32 and weight [C]; returns [rows, C]. */
function checkShapes(x: tf.TensorInfo, weight: tf.TensorInfo): [number, number] {
  const c = x.shape[x.shape.length - 1];
  if (c == null || weight.shape.length !== 1 || weight.shape[0] !== c) {
    throw new Error(`${RMS_NORM}: weight must be [C] for x [..., C], got x [${x.shape}] and weight [${weight.shape}]`);
  }
  for (const t of [x, weight]) if (t.dtype !== 'float32') throw new Error(`${RMS_NORM}: float32 only, got ${t.dtype}`);
  return [tf.util.sizeFromShape(x.shape) / c, c];
}

/** 1/sqrt(mean(x²) + eps) of the row starting at `base`. */
function rowScale(x: Float32Array, base: number, c: number, eps: number): number {
  let sq = 0;
  for (let j = 0; j < c; j++) sq += x[base + j]! * x[base + j]!;
  return 1 / Math.sqrt(sq / c + eps);
}

const rmsNormKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, weight } = inputs as { x: tf.TensorInfo; weight: tf.TensorInfo };
  const { eps } = attrs as unknown as { eps: number };
  const [rows, c] = checkShapes(x, weight);
  const native = nativeRmsNorm(backend, { x, weight, dy: null }, eps);
  if (native != null) return native[0]!;
  const io = host(backend);
  const out = io.outputs([x.shape]);
  const [y] = out.views() as [Float32Array];
  const xs = io.read(x);
  const w = io.read(weight);
  for (let r = 0, base = 0; r < rows; r++, base += c) {
    const rs = rowScale(xs, base, c, eps);
    for (let j = 0; j < c; j++) y[base + j] = xs[base + j]! * rs * w[j]!;
  }
  return out.infos[0]!;
};

const rmsNormGradKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, weight, dy } = inputs as { x: tf.TensorInfo; weight: tf.TensorInfo; dy: tf.TensorInfo };
  const { eps } = attrs as unknown as { eps: number };
  const [rows, c] = checkShapes(x, weight);
  const native = nativeRmsNorm(backend, { x, weight, dy }, eps);
  if (native != null) return native;
  const io = host(backend);
  const out = io.outputs([x.shape, [c]]);
  const [dx, dweight] = out.views() as [Float32Array, Float32Array];
  const xs = io.read(x);
  const w = io.read(weight);
  const g = io.read(dy);
  const dw = new Float64Array(c);
  // dx = rs · dy · w − x · rs³ · mean(dy · w · x); dw = Σ_rows dy · x · rs.
  for (let r = 0, base = 0; r < rows; r++, base += c) {
    const rs = rowScale(xs, base, c, eps);
    let gx = 0;
    for (let j = 0; j < c; j++) gx += g[base + j]! * w[j]! * xs[base + j]!;
    const k = (-rs * rs * rs * gx) / c;
    for (let j = 0; j < c; j++) {
      dx[base + j] = g[base + j]! * w[j]! * rs + xs[base + j]! * k;
      dw[j]! += g[base + j]! * xs[base + j]! * rs;
    }
  }
  dweight.set(dw);
  return out.infos;
};

/** The RMSNorm kernels for `backendName` ('wasm' or 'cpu'); the gradient is registered once. */
export function registerRmsNormKernels(backendName: 'wasm' | 'cpu'): string[] {
  for (const [kernelName, kernelFunc] of [
    [RMS_NORM, rmsNormKernel],
    [RMS_NORM_GRAD, rmsNormGradKernel],
  ] as const) {
    if (tf.getKernel(kernelName, backendName) == null) tf.registerKernel({ kernelName, backendName, kernelFunc });
  }
  if (tf.getGradient(RMS_NORM) == null) {
    tf.registerGradient({
      kernelName: RMS_NORM,
      inputsToSave: ['x', 'weight'],
      gradFunc: (dy, saved, attrs) => {
        const [x, weight] = saved as [tf.Tensor, tf.Tensor];
        // One backward kernel gives both (see registerGroupNormGradient).
        const [dx, dweight] = tf
          .engine()
          .runKernel(RMS_NORM_GRAD, { x, weight, dy: dy as tf.Tensor }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
        return { x: () => dx!, weight: () => dweight! };
      },
    });
  }
  return [RMS_NORM, RMS_NORM_GRAD];
}
