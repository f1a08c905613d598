import * as tf from '@tensorflow/tfjs-core';
import { host } from './host';

// Σᵢ Σ gᵢ² over many tensors as one kernel: @ettjs/core's `globalNorm` (the gradient clipping of
// every LM stage and of the critic) otherwise runs a square and a sum per parameter — about 350
// kernel calls per stage-2 ETT step, each with tfjs's fixed per-op cost (on WebGPU 25–100 µs).

/** Kernel name (also in @ettjs/core's `globalNorm`, which must stay in step). */
export const SUM_SQUARES = 'EttSumSquares';

function inputList(inputs: tf.NamedTensorInfoMap, count: number): tf.TensorInfo[] {
  const list: tf.TensorInfo[] = [];
  for (let i = 0; i < count; i++) {
    const t = inputs[`g${i}`];
    if (t == null || t.dtype !== 'float32') throw new Error(`${SUM_SQUARES}: input g${i} must be a float32 tensor`);
    list.push(t);
  }
  return list;
}

/** wasm and cpu: one pass over each input on the host, summed in float64, rounded once to float32. */
function hostSumSquares({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) {
  const list = inputList(inputs, (attrs as unknown as { count: number }).count);
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
function webgpuSumSquares({
  inputs,
  backend,
  attrs,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: tf.KernelBackend;
  attrs?: tf.NamedAttrMap;
}) {
  const list = inputList(inputs, (attrs as unknown as { count: number }).count);
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

/** Registers the kernel for a backend (idempotent); returns its name. */
export function registerSumSquaresKernel(backendName: 'wasm' | 'cpu' | 'webgpu'): string {
  if (tf.getKernel(SUM_SQUARES, backendName) == null) {
    const kernelFunc = (backendName === 'webgpu' ? webgpuSumSquares : hostSumSquares) as unknown as tf.KernelFunc;
    tf.registerKernel({ kernelName: SUM_SQUARES, backendName, kernelFunc });
  }
  return SUM_SQUARES;
}
