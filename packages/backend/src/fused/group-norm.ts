import * as tf from '@tensorflow/tfjs-core';
import { nativeGroupNorm } from '../wasm-kernels/native';
import { host } from './host';

// GroupNorm + affine (+ SiLU) as one kernel forward and one backward, for the wasm and cpu backends.
// Written with tfjs ops a VQGAN GroupNorm + SiLU is about a dozen kernels forward (two full-tensor
// transposes among them) and two dozen backward, each a pass over the tensor plus tfjs-core's
// per-op bookkeeping; here it is three passes forward and four backward over the NHWC data, on the
// native addon (C++, one sample per thread) when the wasm backend runs with it, else in JavaScript
// with float64 accumulators. `groupNorm` in @ettjs/core runs this kernel when the
// active backend has it and the same composition of tfjs ops everywhere else.

/** Kernel names (also in @ettjs/core's `groupNorm`, which must stay in step). */
export const GROUP_NORM = 'EttGroupNorm';
export const GROUP_NORM_GRAD = 'EttGroupNormGrad';

export interface GroupNormAttrs {
  groups: number;
  eps: number;
  activation: 'none' | 'silu';
}

/**
 * One sample's statistics, spread per channel: `mean[ch]` and `rstd[ch]` = 1/sqrt(var + eps) of the
 * channel's group, two passes in float64 (per-channel sums first, so the inner loops are plain).
 */
function sampleStatistics(
  x: Float32Array,
  base: number,
  hw: number,
  c: number,
  groups: number,
  eps: number,
  mean: Float64Array,
  rstd: Float64Array,
  acc: Float64Array,
): void {
  const cg = c / groups;
  const n = hw * cg;
  acc.fill(0);
  for (let p = 0, o = base; p < hw; p++, o += c) for (let ch = 0; ch < c; ch++) acc[ch]! += x[o + ch];
  for (let g = 0; g < groups; g++) {
    let sum = 0;
    for (let k = 0; k < cg; k++) sum += acc[g * cg + k]!;
    for (let k = 0; k < cg; k++) mean[g * cg + k] = sum / n;
  }
  acc.fill(0);
  for (let p = 0, o = base; p < hw; p++, o += c)
    for (let ch = 0; ch < c; ch++) {
      const d = x[o + ch]! - mean[ch]!;
      acc[ch]! += d * d;
    }
  for (let g = 0; g < groups; g++) {
    let sq = 0;
    for (let k = 0; k < cg; k++) sq += acc[g * cg + k]!;
    for (let k = 0; k < cg; k++) rstd[g * cg + k] = 1 / Math.sqrt(sq / n + eps);
  }
}

/** Checks x [B, H, W, C] float32, gamma and beta [C], groups dividing C; returns [B, H·W, C]. */
export function checkGroupNormShapes(
  x: tf.TensorInfo,
  gamma: tf.TensorInfo,
  beta: tf.TensorInfo,
  groups: number,
): [number, number, number] {
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
  const [b, hw, c] = checkGroupNormShapes(x, gamma, beta, groups);
  const native = nativeGroupNorm(backend, { x, gamma, beta, dy: null }, { groups, eps, activation });
  if (native != null) return native[0]!;
  const io = host(backend);
  const out = io.outputs([x.shape]);
  const [y] = out.views() as [Float32Array];
  const xs = io.read(x);
  const ga = io.read(gamma);
  const be = io.read(beta);
  const mean = new Float64Array(c);
  const rstd = new Float64Array(c);
  const acc = new Float64Array(c);
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  const silu = activation === 'silu';
  for (let s = 0; s < b; s++) {
    const base = s * hw * c;
    sampleStatistics(xs, base, hw, c, groups, eps, mean, rstd, acc);
    // u = (x − mean) · rstd · gamma + beta = x · scale + shift
    for (let ch = 0; ch < c; ch++) {
      scale[ch] = rstd[ch]! * ga[ch]!;
      shift[ch] = be[ch]! - mean[ch]! * scale[ch]!;
    }
    for (let p = 0, o = base; p < hw; p++, o += c)
      for (let ch = 0; ch < c; ch++) {
        const u = xs[o + ch]! * scale[ch]! + shift[ch]!;
        y[o + ch] = silu ? u / (1 + Math.exp(-u)) : u;
      }
  }
  return out.infos[0]!;
};

const groupNormGradKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, gamma, beta, dy } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo; dy: tf.TensorInfo };
  const { groups, eps, activation } = attrs as unknown as GroupNormAttrs;
  const [b, hw, c] = checkGroupNormShapes(x, gamma, beta, groups);
  const native = nativeGroupNorm(backend, { x, gamma, beta, dy }, { groups, eps, activation });
  if (native != null) return native;
  const io = host(backend);
  const out = io.outputs([x.shape, [c], [c]]);
  const [dx, dgamma, dbeta] = out.views() as [Float32Array, Float32Array, Float32Array];
  const xs = io.read(x);
  const ga = io.read(gamma);
  const be = io.read(beta);
  const g_ = io.read(dy);
  const cg = c / groups;
  const n = hw * cg;
  const silu = activation === 'silu';
  const mean = new Float64Array(c);
  const rstd = new Float64Array(c);
  const acc = new Float64Array(c);
  const dGamma = new Float64Array(c);
  const dBeta = new Float64Array(c);
  const s1 = new Float64Array(c); // Σ dxhat per channel, then per group
  const s2 = new Float64Array(c); // Σ dxhat · xhat
  const k0 = new Float64Array(c);
  const k1 = new Float64Array(c);
  const k2 = new Float64Array(c);
  // du = dy · act'(u); dxhat = du · gamma; dx = rstd · (dxhat − mean_g(dxhat) − xhat · mean_g(dxhat · xhat)).
  // The first pass leaves dxhat in dx (one sigmoid per element), the second finishes dx.
  for (let s = 0; s < b; s++) {
    const base = s * hw * c;
    sampleStatistics(xs, base, hw, c, groups, eps, mean, rstd, acc);
    s1.fill(0);
    s2.fill(0);
    for (let p = 0, o = base; p < hw; p++, o += c)
      for (let ch = 0; ch < c; ch++) {
        const xhat = (xs[o + ch]! - mean[ch]!) * rstd[ch]!;
        let d = g_[o + ch]!;
        if (silu) {
          const u = xhat * ga[ch]! + be[ch]!;
          const sg = 1 / (1 + Math.exp(-u));
          d *= sg * (1 + u * (1 - sg));
        }
        dBeta[ch]! += d;
        dGamma[ch]! += d * xhat;
        const dxhat = d * ga[ch]!;
        dx[o + ch] = dxhat;
        s1[ch]! += dxhat;
        s2[ch]! += dxhat * xhat;
      }
    // dx = rstd·dxhat − rstd·m1 − (x − mean)·rstd²·m2 = k0·dxhat + k1·x + k2, per channel.
    for (let g = 0; g < groups; g++) {
      let m1 = 0;
      let m2 = 0;
      for (let k = 0; k < cg; k++) {
        m1 += s1[g * cg + k]!;
        m2 += s2[g * cg + k]!;
      }
      m1 /= n;
      m2 /= n;
      for (let k = 0; k < cg; k++) {
        const ch = g * cg + k;
        const r = rstd[ch]!;
        k0[ch] = r;
        k1[ch] = -r * r * m2;
        k2[ch] = -r * m1 + mean[ch]! * r * r * m2;
      }
    }
    for (let p = 0, o = base; p < hw; p++, o += c)
      for (let ch = 0; ch < c; ch++) dx[o + ch] = k0[ch]! * dx[o + ch]! + k1[ch]! * xs[o + ch]! + k2[ch]!;
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
  registerGroupNormGradient();
  return [GROUP_NORM, GROUP_NORM_GRAD];
}

/** The gradient of GROUP_NORM, through the GROUP_NORM_GRAD kernel of whichever backend runs (once). */
export function registerGroupNormGradient(): void {
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
}
