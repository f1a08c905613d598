import * as tf from '@tensorflow/tfjs-core';
import type { PerceptualLoss } from './perceptual';

/** Options of the weight-free structural loss. */
export interface StructuralLossOptions {
  /** Scales (each halves the side by 2×2 average pooling). Defaults to 3. */
  scales: number;
  /** Weight of the image-gradient L1 term. Defaults to 1. */
  gradientWeight: number;
  /** Weight of the `1 − SSIM` term. Defaults to 1. */
  ssimWeight: number;
  /** Pixel range, for SSIM's constants `C1 = (0.01R)²`, `C2 = (0.03R)²`. Defaults to 2 (images in [-1, 1]). */
  dataRange: number;
}

export const DEFAULT_STRUCTURAL_LOSS_OPTIONS: Readonly<StructuralLossOptions> = {
  scales: 3,
  gradientWeight: 1,
  ssimWeight: 1,
  dataRange: 2,
};

/**
 * A weight-free stand-in for LPIPS (ours, not the paper's: LPIPS needs pretrained VGG weights that
 * cannot be fetched here). Like LPIPS it penalises lost edges and texture that plain L1 averages
 * away. At each of `scales` scales (2×2 average pooling between them):
 * `gradientWeight·(mean|∂_h x − ∂_h y| + mean|∂_w x − ∂_w y|) + ssimWeight·(1 − mean SSIM₃ₓ₃(x, y))`,
 * SSIM with 3×3 box statistics over valid windows, per channel; the loss is the mean over scales.
 * Images `[B, H, W, C]` with `H, W ≥ 3·2^(scales−1)`.
 */
export class StructuralLoss implements PerceptualLoss {
  readonly kind = 'structural';
  readonly options: Readonly<StructuralLossOptions>;

  constructor(options: Partial<StructuralLossOptions> = {}) {
    this.options = Object.freeze({ ...DEFAULT_STRUCTURAL_LOSS_OPTIONS, ...options });
    if (!Number.isInteger(this.options.scales) || this.options.scales < 1) {
      throw new Error(`StructuralLoss: scales must be a positive integer, got ${this.options.scales}`);
    }
  }

  compute(x: tf.Tensor4D, y: tf.Tensor4D): tf.Scalar {
    const { scales, gradientWeight, ssimWeight, dataRange } = this.options;
    if (x.rank !== 4 || !tf.util.arraysEqual(x.shape, y.shape)) {
      throw new Error(`StructuralLoss: images must be [B, H, W, C] of one shape, got [${x.shape}] and [${y.shape}]`);
    }
    const minSide = 3 * 2 ** (scales - 1);
    if (x.shape[1] < minSide || x.shape[2] < minSide) {
      throw new Error(
        `StructuralLoss: images ${x.shape[1]}×${x.shape[2]} are too small for ${scales} scales (need ≥ ${minSide}); use fewer scales`,
      );
    }
    const c1 = (0.01 * dataRange) ** 2;
    const c2 = (0.03 * dataRange) ** 2;
    return tf.tidy(() => {
      let a: tf.Tensor4D = x;
      let b: tf.Tensor4D = y;
      let total: tf.Tensor = tf.scalar(0);
      for (let s = 0; s < scales; s++) {
        if (s > 0) {
          a = tf.avgPool(a, 2, 2, 'valid');
          b = tf.avgPool(b, 2, 2, 'valid');
        }
        const [B, H, W, C] = a.shape;
        const dh = (t: tf.Tensor4D) => tf.sub(tf.slice(t, [0, 1, 0, 0], [B, H - 1, W, C]), tf.slice(t, [0, 0, 0, 0], [B, H - 1, W, C]));
        const dw = (t: tf.Tensor4D) => tf.sub(tf.slice(t, [0, 0, 1, 0], [B, H, W - 1, C]), tf.slice(t, [0, 0, 0, 0], [B, H, W - 1, C]));
        const grad = tf.add(tf.mean(tf.abs(tf.sub(dh(a), dh(b)))), tf.mean(tf.abs(tf.sub(dw(a), dw(b)))));
        const box = (t: tf.Tensor4D) => tf.avgPool(t, 3, 1, 'valid');
        const mx = box(a);
        const my = box(b);
        const vx = tf.sub(box(tf.mul(a, a)), tf.mul(mx, mx));
        const vy = tf.sub(box(tf.mul(b, b)), tf.mul(my, my));
        const cxy = tf.sub(box(tf.mul(a, b)), tf.mul(mx, my));
        const num = tf.mul(tf.add(tf.mul(tf.mul(mx, my), 2), c1), tf.add(tf.mul(cxy, 2), c2));
        const den = tf.mul(tf.add(tf.add(tf.mul(mx, mx), tf.mul(my, my)), c1), tf.add(tf.add(vx, vy), c2));
        const ssim = tf.mean(tf.div(num, den));
        total = tf.add(total, tf.add(tf.mul(grad, gradientWeight), tf.mul(tf.sub(1, ssim), ssimWeight)));
      }
      return tf.div(total, scales) as tf.Scalar;
    });
  }
}
