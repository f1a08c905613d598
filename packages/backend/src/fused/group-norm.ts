import * as tf from '@tensorflow/tfjs-core';

// GroupNorm + affine (+ SiLU) as one kernel forward and one backward, for the wasm and cpu backends.
// Written with tfjs ops a VQGAN GroupNorm + SiLU is about a dozen kernels forward (two full-tensor
// transposes among them) and two dozen backward, each a pass over the tensor plus tfjs-core's
// per-op bookkeeping; here it is three passes forward and three backward over the NHWC data, in
// JavaScript with float64 accumulators. `groupNorm` in @ettjs/core runs this kernel when the
// active backend has it and the same composition of tfjs ops everywhere else.

/** Kernel names (also in @ettjs/core's `groupNorm`, which must stay in step). */
export const GROUP_NORM = 'EttGroupNorm';
export const GROUP_NORM_GRAD = 'EttGroupNormGrad';

export interface GroupNormAttrs {
  groups: number;
  eps: number;
  activation: 'none' | 'silu';
}

/** Reads and writes float32 tensor data on a backend whose data the CPU can address. */
interface Host {
  read(t: tf.TensorInfo): Float32Array;
  /** Allocates outputs first (on wasm a new allocation can move the heap), then returns views of them. */
  outputs(shapes: number[][]): { infos: tf.TensorInfo[]; views: () => Float32Array[] };
}

interface WasmLike extends tf.KernelBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}
interface CpuLike extends tf.KernelBackend {
  data: { get(dataId: object): { values: tf.backend_util.BackendValues } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

function host(backend: unknown): Host {
  const b = backend as Partial<WasmLike & CpuLike>;
  if (typeof b.typedArrayFromHeap === 'function' && typeof b.makeOutput === 'function') {
    const w = b as WasmLike;
    return {
      read: (t) => w.typedArrayFromHeap(t),
      outputs: (shapes) => {
        const infos = shapes.map((s) => w.makeOutput(s, 'float32'));
        return { infos, views: () => infos.map((i) => w.typedArrayFromHeap(i)) };
      },
    };
  }
  const c = b as CpuLike;
  return {
    read: (t) => c.data.get(t.dataId).values as Float32Array,
    outputs: (shapes) => {
      const arrays = shapes.map((s) => new Float32Array(tf.util.sizeFromShape(s)));
      const infos = shapes.map((s, i) => c.makeTensorInfo(s, 'float32', arrays[i]));
      return { infos, views: () => arrays };
    },
  };
}

/** Per (sample, group) mean and 1/sqrt(var + eps), two passes in float64. */
function statistics(x: Float32Array, b: number, hw: number, c: number, groups: number, eps: number) {
  const cg = c / groups;
  const n = hw * cg;
  const mean = new Float64Array(b * groups);
  const rstd = new Float64Array(b * groups);
  const acc = new Float64Array(groups);
  for (let s = 0; s < b; s++) {
    const base = s * hw * c;
    acc.fill(0);
    for (let p = 0; p < hw; p++) {
      const o = base + p * c;
      for (let g = 0, ch = 0; g < groups; g++) {
        let sum = 0;
        for (let k = 0; k < cg; k++, ch++) sum += x[o + ch]!;
        acc[g]! += sum;
      }
    }
    for (let g = 0; g < groups; g++) mean[s * groups + g] = acc[g]! / n;
    acc.fill(0);
    for (let p = 0; p < hw; p++) {
      const o = base + p * c;
      for (let g = 0, ch = 0; g < groups; g++) {
        const m = mean[s * groups + g]!;
        let sq = 0;
        for (let k = 0; k < cg; k++, ch++) {
          const d = x[o + ch]! - m;
          sq += d * d;
        }
        acc[g]! += sq;
      }
    }
    for (let g = 0; g < groups; g++) rstd[s * groups + g] = 1 / Math.sqrt(acc[g]! / n + eps);
  }
  return { mean, rstd };
}

function checkShapes(x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo, groups: number): [number, number, number] {
  if (x.shape.length !== 4) throw new Error(`${GROUP_NORM}: x must be [B, H, W, C], got [${x.shape}]`);
  const [b, h, w, c] = x.shape as [number, number, number, number];
  if (gamma.shape.length !== 1 || gamma.shape[0] !== c || beta.shape.length !== 1 || beta.shape[0] !== c) {
    throw new Error(`${GROUP_NORM}: gamma and beta must be [${c}], got [${gamma.shape}] and [${beta.shape}]`);
  }
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0)
    throw new Error(`${GROUP_NORM}: ${c} channels do not split into ${groups} groups`);
  for (const t of [x, gamma, beta]) if (t.dtype !== 'float32') throw new Error(`${GROUP_NORM}: float32 only, got ${t.dtype}`);
  return [b, h * w, c];
}

const groupNormKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
  const { groups, eps, activation } = attrs as unknown as GroupNormAttrs;
  const [b, hw, c] = checkShapes(x, gamma, beta, groups);
  const io = host(backend);
  const out = io.outputs([x.shape]);
  const [y] = out.views();
  const xs = io.read(x);
  const ga = io.read(gamma);
  const be = io.read(beta);
  const { mean, rstd } = statistics(xs, b, hw, c, groups, eps);
  const cg = c / groups;
  const silu = activation === 'silu';
  for (let s = 0; s < b; s++) {
    for (let p = 0; p < hw; p++) {
      const o = (s * hw + p) * c;
      for (let ch = 0; ch < c; ch++) {
        const g = s * groups + ((ch / cg) | 0);
        const u = (xs[o + ch]! - mean[g]!) * rstd[g]! * ga[ch]! + be[ch]!;
        y![o + ch] = silu ? u / (1 + Math.exp(-u)) : u;
      }
    }
  }
  return out.infos[0]!;
};

const groupNormGradKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, gamma, beta, dy } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo; dy: tf.TensorInfo };
  const { groups, eps, activation } = attrs as unknown as GroupNormAttrs;
  const [b, hw, c] = checkShapes(x, gamma, beta, groups);
  const io = host(backend);
  const out = io.outputs([x.shape, [c], [c]]);
  const [dx, dgamma, dbeta] = out.views() as [Float32Array, Float32Array, Float32Array];
  const xs = io.read(x);
  const ga = io.read(gamma);
  const be = io.read(beta);
  const g_ = io.read(dy);
  const { mean, rstd } = statistics(xs, b, hw, c, groups, eps);
  const cg = c / groups;
  const n = hw * cg;
  const silu = activation === 'silu';
  const dGamma = new Float64Array(c);
  const dBeta = new Float64Array(c);
  const s1 = new Float64Array(groups); // Σ dxhat
  const s2 = new Float64Array(groups); // Σ dxhat · xhat
  // du = dy · act'(u); dxhat = du · gamma; dx = rstd · (dxhat − mean(dxhat) − xhat · mean(dxhat · xhat)).
  const du = (o: number, ch: number, xhat: number) => {
    const u = xhat * ga[ch]! + be[ch]!;
    if (!silu) return g_[o]!;
    const sg = 1 / (1 + Math.exp(-u));
    return g_[o]! * sg * (1 + u * (1 - sg));
  };
  for (let s = 0; s < b; s++) {
    s1.fill(0);
    s2.fill(0);
    for (let p = 0; p < hw; p++) {
      const o = (s * hw + p) * c;
      for (let ch = 0; ch < c; ch++) {
        const gi = (ch / cg) | 0;
        const g = s * groups + gi;
        const xhat = (xs[o + ch]! - mean[g]!) * rstd[g]!;
        const d = du(o + ch, ch, xhat);
        dBeta[ch]! += d;
        dGamma[ch]! += d * xhat;
        const dxhat = d * ga[ch]!;
        s1[gi]! += dxhat;
        s2[gi]! += dxhat * xhat;
      }
    }
    for (let p = 0; p < hw; p++) {
      const o = (s * hw + p) * c;
      for (let ch = 0; ch < c; ch++) {
        const gi = (ch / cg) | 0;
        const g = s * groups + gi;
        const xhat = (xs[o + ch]! - mean[g]!) * rstd[g]!;
        const dxhat = du(o + ch, ch, xhat) * ga[ch]!;
        dx[o + ch] = rstd[g]! * (dxhat - s1[gi]! / n - (xhat * s2[gi]!) / n);
      }
    }
  }
  dgamma.set(dGamma);
  dbeta.set(dBeta);
  return out.infos;
};

/** The GroupNorm kernels for `backendName` ('wasm' or 'cpu'); the gradient is registered once. */
export function registerGroupNormKernels(backendName: 'wasm' | 'cpu'): string[] {
  for (const [kernelName, kernelFunc] of [
    [GROUP_NORM, groupNormKernel],
    [GROUP_NORM_GRAD, groupNormGradKernel],
  ] as const) {
    if (tf.getKernel(kernelName, backendName) == null) tf.registerKernel({ kernelName, backendName, kernelFunc });
  }
  if (tf.getGradient(GROUP_NORM) == null) {
    tf.registerGradient({
      kernelName: GROUP_NORM,
      inputsToSave: ['x', 'gamma', 'beta'],
      gradFunc: (dy, saved, attrs) => {
        const [x, gamma, beta] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        // One backward kernel gives all three, computed here once: the engine calls each closure
        // inside its own tidy, and disposes whatever it does not ask for when the backward pass ends.
        const [dx, dgamma, dbeta] = tf
          .engine()
          .runKernel(GROUP_NORM_GRAD, { x, gamma, beta, dy: dy as tf.Tensor }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
        return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
      },
    });
  }
  return [GROUP_NORM, GROUP_NORM_GRAD];
}
