import * as tf from '@tensorflow/tfjs-core';
import { host } from './host';

// Σᵢ Σ gᵢ² over many tensors as one kernel: @ettjs/core's `globalNorm` (the gradient clipping of
// every LM stage and of the critic) otherwise runs a square and a sum per parameter — about 350
// kernel calls per stage-2 ETT step, each with tfjs's fixed per-op cost (on WebGPU 25–100 µs).

/** Kernel name (also in @ettjs/core's `globalNorm`, which must stay in step). */
export const SUM_SQUARES = 'EttSumSquares';

/** The kernel's inputs: an array of tensors (as tfjs passes AddN's), each float32. */
function inputList(inputs: tf.NamedTensorInfoMap): tf.TensorInfo[] {
  const list = inputs as unknown as tf.TensorInfo[];
  if (!Array.isArray(list) || list.length === 0) throw new Error(`${SUM_SQUARES}: needs a non-empty array of tensors`);
  list.forEach((t, i) => {
    if (t == null || t.dtype !== 'float32') throw new Error(`${SUM_SQUARES}: input ${i} must be a float32 tensor`);
  });
  return list;
}

/** wasm and cpu: one pass over each input on the host, summed in float64, rounded once to float32. */
function hostSumSquares({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }) {
  const list = inputList(inputs);
  const h = host(backend);
  const { infos, views } = h.outputs([[]]);
  let total = 0;
  for (const t of list) {
    const v = h.read(t);
    // Four independent float64 accumulators: the loop runs at the adds' throughput, not their latency.
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    const n4 = v.length - (v.length % 4);
    for (let k = 0; k < n4; k += 4) {
      const a = v[k]!;
      const b = v[k + 1]!;
      const c = v[k + 2]!;
      const d = v[k + 3]!;
      s0 += a * a;
      s1 += b * b;
      s2 += c * c;
      s3 += d * d;
    }
    for (let k = n4; k < v.length; k++) s0 += v[k]! * v[k]!;
    total += s0 + s1 + s2 + s3;
  }
  views()[0]![0] = total;
  return infos[0]!;
}

/** webgpu: every input flattened into one vector (one concat), then one square and one sum. */
function webgpuSumSquares({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend }) {
  const list = inputList(inputs);
  const run = (name: string, ins: unknown, a: Record<string, unknown> = {}) =>
    tf
      .getKernel(name, 'webgpu')!
      .kernelFunc({ inputs: ins as tf.NamedTensorInfoMap, backend, attrs: a as tf.NamedAttrMap }) as tf.TensorInfo;
  const temps: tf.TensorInfo[] = [];
  try {
    const flat = list.map((t) => {
      const r = run(tf.Reshape, { x: t }, { shape: [tf.util.sizeFromShape(t.shape)] });
      temps.push(r);
      return r;
    });
    const joined = flat.length === 1 ? flat[0]! : run(tf.Concat, flat, { axis: 0 });
    if (joined !== flat[0]) temps.push(joined);
    const squared = run(tf.Square, { x: joined });
    temps.push(squared);
    return run(tf.Sum, { x: squared }, { axis: [0], keepDims: false });
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
}

/** Registers the kernel for a backend (idempotent), and its gradient 2·gᵢ·dy; returns its name. */
export function registerSumSquaresKernel(backendName: 'wasm' | 'cpu' | 'webgpu'): string {
  if (tf.getKernel(SUM_SQUARES, backendName) == null) {
    const kernelFunc = (backendName === 'webgpu' ? webgpuSumSquares : hostSumSquares) as unknown as tf.KernelFunc;
    tf.registerKernel({ kernelName: SUM_SQUARES, backendName, kernelFunc });
  }
  if (tf.getGradient(SUM_SQUARES) == null) {
    tf.registerGradient({
      kernelName: SUM_SQUARES,
      saveAllInputs: true,
      gradFunc: (dy, saved) =>
        Object.fromEntries(saved.map((g, i) => [String(i), () => tf.mul(tf.mul(dy as tf.Tensor, 2), g)])) as Record<
          string,
          () => tf.Tensor
        >,
    });
  }
  return SUM_SQUARES;
}
