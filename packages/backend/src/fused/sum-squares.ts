import * as tf from '@tensorflow/tfjs-core';
import { nativeSumSquares } from '../wasm-kernels/native';
import { host } from './host';

// Σᵢ Σ gᵢ² over many tensors as one kernel: @ettjs/core's `globalNorm` (the gradient clipping of
// every LM stage and of the critic) otherwise runs a square and a sum per parameter — about 350
// kernel calls per stage-2 ETT step, each with tfjs's fixed per-op cost (on WebGPU 25–100 µs).

/** Kernel name (also in @ettjs/core's `globalNorm`, which must stay in step). */
export const SUM_SQUARES = 'EttSumSquares';

/** The kernel's inputs: an array of tensors (as tfjs passes AddN's), each float32. */
export function sumSquaresInputs(inputs: tf.NamedTensorInfoMap): tf.TensorInfo[] {
  const list = inputs as unknown as tf.TensorInfo[];
  if (!Array.isArray(list) || list.length === 0) throw new Error(`${SUM_SQUARES}: needs a non-empty array of tensors`);
  list.forEach((t, i) => {
    if (t == null || t.dtype !== 'float32') throw new Error(`${SUM_SQUARES}: input ${i} must be a float32 tensor`);
  });
  return list;
}

/**
 * wasm and cpu: one pass over each input, summed in float64, rounded once to float32: on the native
 * addon (vectorized, 0.1 ms for the ETT model's 175 gradients) when wasm runs with it, else here.
 */
function hostSumSquares({ inputs, backend }: { inputs: tf.NamedTensorInfoMap; backend: unknown }) {
  const list = sumSquaresInputs(inputs);
  const native = nativeSumSquares(backend, list);
  if (native != null) return native;
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

/**
 * Registers the kernel for a backend (idempotent), and its gradient 2·gᵢ·dy; returns its name.
 * wasm and cpu run the host loop; webgpu passes its own (src/webgpu/kernels.ts).
 */
export function registerSumSquaresKernel(
  backendName: 'wasm' | 'cpu' | 'webgpu',
  kernelFunc: tf.KernelFunc = hostSumSquares as unknown as tf.KernelFunc,
): string {
  if (tf.getKernel(SUM_SQUARES, backendName) == null) tf.registerKernel({ kernelName: SUM_SQUARES, backendName, kernelFunc });
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
