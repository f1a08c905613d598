import * as tf from '@tensorflow/tfjs-core';
import { nativeAdamW } from '../wasm-kernels/native';
import { host } from './host';

// One AdamW step of many parameters as one kernel, for the wasm and cpu backends. Written with
// tfjs ops, @ettjs/core's AdamW flattens a group's parameters, gradients and moments into four
// vectors, updates them with ~12 elementwise ops and splits the results back: about 7 kernels per
// parameter plus a dozen full passes (1 900 kernel calls per ETT step). Here it is one pass per
// parameter, on the native addon's threads when the wasm backend runs with it, else in JavaScript.
// `AdamW` in @ettjs/core runs this kernel when the active backend has it.

/** Kernel name (also in @ettjs/core's `AdamW`, which must stay in step). */
export const ADAMW = 'EttAdamW';

/**
 * Hyperparameters of one step, as @ettjs/core computes them: `decay` = 1 − lr·weightDecay,
 * `stepSize` = lr / (1 − b1^t), `bc2Sqrt` = sqrt(1 − b2^t).
 */
export interface AdamWAttrs {
  count: number;
  b1: number;
  b2: number;
  eps: number;
  decay: number;
  stepSize: number;
  bc2Sqrt: number;
}

/**
 * Inputs `p<i>`, `g<i>`, `m<i>`, `v<i>` (float32, one size per i) for i < count; outputs
 * [m'<i>, v'<i>, p'<i>] for each i, new tensors (the inputs are not modified):
 * m' = b1·m + (1 − b1)·g, v' = b2·v + (1 − b2)·g², p' = decay·p − stepSize·m' / (sqrt(v') / bc2Sqrt + eps).
 */
function adamwKernel({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) {
  const a = attrs as unknown as AdamWAttrs;
  const params: [tf.TensorInfo, tf.TensorInfo, tf.TensorInfo, tf.TensorInfo][] = [];
  for (let i = 0; i < a.count; i++) {
    const ts = (['p', 'g', 'm', 'v'] as const).map((k) => inputs[`${k}${i}`]);
    const [p] = ts;
    if (ts.some((t) => t == null || t.dtype !== 'float32' || tf.util.sizeFromShape(t.shape) !== tf.util.sizeFromShape(p!.shape))) {
      throw new Error(`${ADAMW}: parameter ${i} needs float32 p${i}, g${i}, m${i}, v${i} of one size`);
    }
    params.push(ts as [tf.TensorInfo, tf.TensorInfo, tf.TensorInfo, tf.TensorInfo]);
  }
  const native = nativeAdamW(backend, params, a);
  if (native != null) return native;
  const h = host(backend);
  const { infos, views } = h.outputs(params.flatMap(([p]) => [p.shape, p.shape, p.shape]));
  const out = views();
  // Math.fround at each step: the float32 arithmetic of the tfjs ops this kernel replaces.
  const f = Math.fround;
  const [b1, b2, c1, c2, eps, decay, stepSize, bc2] = [a.b1, a.b2, 1 - a.b1, 1 - a.b2, a.eps, a.decay, a.stepSize, a.bc2Sqrt].map(f);
  params.forEach(([pt, gt, mt, vt], i) => {
    const [p, g, m, v] = [pt, gt, mt, vt].map((t) => h.read(t));
    const [mo, vo, po] = [out[3 * i]!, out[3 * i + 1]!, out[3 * i + 2]!];
    for (let k = 0; k < p!.length; k++) {
      const gk = g![k]!;
      const mn = f(f(m![k]! * b1!) + f(gk * c1!));
      const vn = f(f(v![k]! * b2!) + f(f(gk * gk) * c2!));
      mo[k] = mn;
      vo[k] = vn;
      po[k] = f(f(p![k]! * decay!) - f(f(mn / f(f(f(Math.sqrt(vn)) / bc2!) + eps!)) * stepSize!));
    }
  });
  return infos;
}

/** Registers the AdamW kernel for a backend (idempotent); returns its name. */
export function registerAdamWKernel(backendName: 'wasm' | 'cpu'): string {
  if (tf.getKernel(ADAMW, backendName) == null) {
    tf.registerKernel({ kernelName: ADAMW, backendName, kernelFunc: adamwKernel as unknown as tf.KernelFunc });
  }
  return ADAMW;
}
