import * as tf from '@tensorflow/tfjs-core';
import type { RopeScaling } from './config';

/**
 * Rotary position embedding in HF's "rotate_half" form (LLaMA/Qwen2, not the interleaved GPT-J form):
 * `inv_freq_i = 1 / θ^(2i/d)`, angles `pos · inv_freq` repeated over both halves of the head, and
 * `x·cos + rotate_half(x)·sin` with `rotate_half([x1, x2]) = [-x2, x1]`.
 */
export class RotaryEmbedding {
  /** float64 inverse frequencies, length headDim / 2. */
  readonly invFreq: Float64Array;

  constructor(
    readonly headDim: number,
    theta: number,
    scaling: RopeScaling | null = null,
  ) {
    const half = headDim / 2;
    const inv = new Float64Array(half);
    for (let i = 0; i < half; i++) inv[i] = 1 / theta ** ((2 * i) / headDim);
    if (scaling?.kind === 'linear') for (let i = 0; i < half; i++) inv[i] /= scaling.factor;
    if (scaling?.kind === 'llama3') llama3Scale(inv, scaling);
    this.invFreq = inv;
  }

  /**
   * cos and sin tables for `positions` (one row per batch item, or one shared row), computed in
   * float64 in JS and rounded once: `[rows, 1, T, headDim]`, broadcasting over heads.
   */
  tables(positions: readonly ArrayLike<number>[]): { cos: tf.Tensor4D; sin: tf.Tensor4D } {
    const rows = positions.length;
    const t = positions[0].length;
    const d = this.headDim;
    const half = d / 2;
    const cos = new Float32Array(rows * t * d);
    const sin = new Float32Array(rows * t * d);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < t; j++) {
        const p = positions[r][j];
        const base = (r * t + j) * d;
        for (let i = 0; i < half; i++) {
          const a = p * this.invFreq[i];
          cos[base + i] = cos[base + i + half] = Math.cos(a);
          sin[base + i] = sin[base + i + half] = Math.sin(a);
        }
      }
    }
    return { cos: tf.tensor4d(cos, [rows, 1, t, d]), sin: tf.tensor4d(sin, [rows, 1, t, d]) };
  }

  /**
   * Rotates `x` `[B, H, T, D]` by the tables from `tables()`. rotate_half is one matmul with a
   * signed permutation ([x1, x2] · R = [-x2, x1]): exact for finite x (each output is ±1 times one
   * input plus zeros), and one kernel forward and backward where split + neg + concat were five
   * strided copies.
   */
  static apply(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const d = x.shape[3];
      const rotated = tf.matMul(x, tf.tensor2d(rotateHalfMatrix(d), [d, d]));
      return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
    });
  }
}

const rotateHalfMatrices = new Map<number, Float32Array>();

/** R [d, d] with x · R = rotate_half(x) = [-x2, x1]: R[half + j, j] = −1, R[j, half + j] = 1. */
function rotateHalfMatrix(d: number): Float32Array {
  let r = rotateHalfMatrices.get(d);
  if (r == null) {
    const half = d / 2;
    r = new Float32Array(d * d);
    for (let j = 0; j < half; j++) {
      r[(half + j) * d + j] = -1;
      r[j * d + half + j] = 1;
    }
    rotateHalfMatrices.set(d, r);
  }
  return r;
}

/**
 * LLaMA 3.1's frequency rescaling (HF `_compute_llama3_parameters`): wavelengths longer than
 * `original / lowFreqFactor` are stretched by `factor`, shorter than `original / highFreqFactor` kept,
 * the band between interpolated smoothly.
 */
function llama3Scale(inv: Float64Array, s: Extract<RopeScaling, { kind: 'llama3' }>): void {
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i];
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) continue;
    if (wavelen > lowWavelen) {
      inv[i] = f / s.factor;
      continue;
    }
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    inv[i] = ((1 - smooth) * f) / s.factor + smooth * f;
  }
}
