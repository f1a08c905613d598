// Independent references shared by the kernel tests: a seeded normal generator, naive float64
// conv2d with its gradients written from the definition, and relative-error checks.
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
export function randn(size: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return out;
}
export const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}
export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol = 2e-4): void {
  const e = maxRelErr(a, b);
  expect(e, `max |a-b| / max |b| = ${e}`).toBeLessThan(tol);
}
// Naive float64 conv2d (NHWC, HWIO) with TF's 'same'/'valid' padding, and its gradients written
// from the definition: the independent reference for the conv kernels.
export interface ConvCase {
  b: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number;
  s: number;
  pad: 'same' | 'valid';
}
export function geometry(c: ConvCase) {
  const oh = c.pad === 'same' ? Math.ceil(c.h / c.s) : Math.ceil((c.h - c.k + 1) / c.s);
  const ow = c.pad === 'same' ? Math.ceil(c.w / c.s) : Math.ceil((c.w - c.k + 1) / c.s);
  const top = c.pad === 'same' ? Math.floor(Math.max(0, (oh - 1) * c.s + c.k - c.h) / 2) : 0;
  const left = c.pad === 'same' ? Math.floor(Math.max(0, (ow - 1) * c.s + c.k - c.w) / 2) : 0;
  return { oh, ow, top, left };
}
export function naiveConvGrads(c: ConvCase, x: Float32Array, wt: Float32Array, dy: Float32Array) {
  const { oh, ow, top, left } = geometry(c);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(wt.length);
  const y = new Float64Array(c.b * oh * ow * c.co);
  for (let b = 0; b < c.b; b++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let ky = 0; ky < c.k; ky++)
          for (let kx = 0; kx < c.k; kx++) {
            const iy = oy * c.s + ky - top;
            const ix = ox * c.s + kx - left;
            if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
            for (let ci = 0; ci < c.ci; ci++)
              for (let co = 0; co < c.co; co++) {
                const xi = ((b * c.h + iy) * c.w + ix) * c.ci + ci;
                const wi = ((ky * c.k + kx) * c.ci + ci) * c.co + co;
                const yi = ((b * oh + oy) * ow + ox) * c.co + co;
                y[yi]! += x[xi]! * wt[wi]!;
                dx[xi]! += dy[yi]! * wt[wi]!;
                dw[wi]! += dy[yi]! * x[xi]!;
              }
          }
  return { y, dx, dw };
}

/**
 * Runs `f` on `backend`, then switches to `after`, and returns the outputs as plain arrays (no
 * tensors survive).
 */
export async function runOn(backend: string, after: string, f: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  try {
    const outs = tf.tidy(f);
    const data = await Promise.all(outs.map((t) => t.data()));
    tf.dispose(outs);
    return data.map((d) => Float32Array.from(d as Float32Array));
  } finally {
    await tf.setBackend(after);
  }
}

/** conv2d(x, w) and its gradients for x and w at upstream gradient dy, as a function that makes the tensors. */
export function convValueAndGrads(c: ConvCase, x: Float32Array, w: Float32Array, dy: Float32Array): () => tf.Tensor[] {
  const { oh, ow } = geometry(c);
  return () => {
    const xt = tf.tensor4d(x, [c.b, c.h, c.w, c.ci]);
    const wt = tf.tensor4d(w, [c.k, c.k, c.ci, c.co]);
    const dyt = tf.tensor4d(dy, [c.b, oh, ow, c.co]);
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad), dyt)),
    )([xt, wt]);
    return [tf.conv2d(xt, wt, c.s, c.pad), gx!, gw!];
  };
}
