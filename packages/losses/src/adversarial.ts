import { Module, stopGradient } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import type { PatchDiscriminator } from './discriminator';
import { LossConfigError } from './errors';

/**
 * Hinge discriminator loss [IBQ `hinge_d_loss`]: `½[mean relu(1 − D(x)) + mean relu(1 + D(x̂))]`,
 * means over every patch of the batch.
 */
export function hingeDiscriminatorLoss(logitsReal: tf.Tensor, logitsFake: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const real = tf.mean(tf.relu(tf.sub(1, logitsReal)));
    const fake = tf.mean(tf.relu(tf.add(1, logitsFake)));
    return tf.mul(tf.add(real, fake), 0.5) as tf.Scalar;
  });
}

/**
 * LeCAM regularisation [Tseng et al. 2021; IBQ `lecam_reg`]:
 * `mean(relu(D(x) − ema_fake)²) + mean(relu(ema_real − D(x̂))²)`. The EMAs are constants here.
 */
export function lecamRegularization(logitsReal: tf.Tensor, logitsFake: tf.Tensor, emaReal: tf.Scalar, emaFake: tf.Scalar): tf.Scalar {
  return tf.tidy(() => {
    const a = tf.mean(tf.square(tf.relu(tf.sub(logitsReal, stopGradient(emaFake)))));
    const b = tf.mean(tf.square(tf.relu(tf.sub(stopGradient(emaReal), logitsFake))));
    return tf.add(a, b) as tf.Scalar;
  });
}

/** `log(1 + e^{−m})` computed without overflow: `relu(−m) + log1p(e^{−|m|})`. */
function softplusNeg(m: tf.Tensor): tf.Tensor {
  return tf.add(tf.relu(tf.neg(m)), tf.log1p(tf.exp(tf.neg(tf.abs(m)))));
}

/**
 * Non-saturating generator loss exactly as IBQ's `non_saturate_gen_loss`: average the patch logits
 * of each image first, then `BCE(sigmoid(m_b), 1) = log(1 + e^{−m_b})`, mean over the batch.
 * (Averaging per image before the BCE is IBQ's choice; pix2pix applies BCE per patch.)
 * logits `[B, h, w, 1]`.
 */
export function nonSaturatingGeneratorLoss(logitsFake: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const m = tf.mean(tf.reshape(logitsFake, [logitsFake.shape[0], -1]), 1); // [B]
    return tf.mean(softplusNeg(m)) as tf.Scalar;
  });
}

/** Options of the LeCAM EMA. */
export interface LecamOptions {
  /** EMA decay of the mean logits. Defaults to 0.999 [IBQ `LeCAM_EMA`]. */
  decay?: number;
  /** Initial EMA values. Defaults to 0 [IBQ]. */
  init?: number;
}

/**
 * The LeCAM anchors: EMAs of the mean real and fake logits, held as buffers (`real`, `fake`) so a
 * checkpoint carries them. IBQ updates the EMAs with the current batch BEFORE computing the
 * regulariser; here `next()` gives those updated values as constants for use inside the taped
 * function, and `update()` commits the same values after the step, outside the tape.
 */
export class LecamEma extends Module {
  readonly decay: number;
  readonly real: tf.Variable;
  readonly fake: tf.Variable;

  constructor(options: LecamOptions = {}) {
    super();
    this.decay = options.decay ?? 0.999;
    if (!(this.decay >= 0 && this.decay < 1)) throw new LossConfigError(`LecamEma: decay must be in [0, 1), got ${this.decay}`);
    this.real = this.addBuffer('real', tf.scalar(options.init ?? 0));
    this.fake = this.addBuffer('fake', tf.scalar(options.init ?? 0));
  }

  /** The EMAs after folding in this batch's mean logits, without changing state (no gradient). */
  next(logitsRealMean: tf.Scalar, logitsFakeMean: tf.Scalar): { real: tf.Scalar; fake: tf.Scalar } {
    return tf.tidy(() => {
      const d = this.decay;
      const real = tf.add(tf.mul(this.real, d), tf.mul(stopGradient(logitsRealMean), 1 - d)) as tf.Scalar;
      const fake = tf.add(tf.mul(this.fake, d), tf.mul(stopGradient(logitsFakeMean), 1 - d)) as tf.Scalar;
      return { real, fake };
    });
  }

  /** Commits the EMA update; call once per discriminator step, after the gradient step. */
  update(logitsRealMean: tf.Scalar, logitsFakeMean: tf.Scalar): void {
    tf.tidy(() => {
      const { real, fake } = this.next(logitsRealMean, logitsFakeMean);
      this.real.assign(real);
      this.fake.assign(fake);
    });
  }
}

/** Options of `discriminatorLoss`. */
export interface DiscriminatorLossOptions {
  /** LeCAM anchors; without them the LeCAM term is skipped (IBQ: `lecam_loss_weight` None). */
  lecam?: LecamEma;
  /** LeCAM weight. Defaults to 0.05 [P §4.1, IBQ yaml `lecam_loss_weight`]. */
  lecamWeight?: number;
}

/** The discriminator step's loss and its parts. */
export type DiscriminatorLossResult = {
  total: tf.Scalar;
  /** `hinge`, `lecam` (unweighted; 0 without anchors), `logitsReal`, `logitsFake` (batch means, for the log and `lecam.update`). */
  components: { hinge: tf.Scalar; lecam: tf.Scalar; logitsReal: tf.Scalar; logitsFake: tf.Scalar };
};

/**
 * L_D [IBQ vqperceptual.py, optimizer_idx 1]: `hinge + lecamWeight·LeCAM`, with D run separately on
 * the real and the fake batch (as IBQ does, so batch-statistics norm sees each batch alone). Pass
 * reconstructions through `stopGradient` or compute them outside the tape: only D is trained here.
 * After the step, call `lecam.update(components.logitsReal, components.logitsFake)`.
 */
export function discriminatorLoss(
  disc: PatchDiscriminator,
  real: tf.Tensor4D,
  fake: tf.Tensor4D,
  options: DiscriminatorLossOptions = {},
): DiscriminatorLossResult {
  const w = options.lecamWeight ?? 0.05;
  if (!(w >= 0) || !Number.isFinite(w)) throw new LossConfigError(`discriminatorLoss: lecamWeight must be a finite number ≥ 0, got ${w}`);
  if (!tf.util.arraysEqual(real.shape, fake.shape)) {
    throw new Error(`discriminatorLoss: real [${real.shape}] and fake [${fake.shape}] images must have the same shape`);
  }
  return tf.tidy(() => {
    const lr = disc.forward(real);
    const lf = disc.forward(fake);
    const logitsReal = tf.mean(lr) as tf.Scalar;
    const logitsFake = tf.mean(lf) as tf.Scalar;
    const hinge = hingeDiscriminatorLoss(lr, lf);
    let lecam: tf.Scalar = tf.scalar(0);
    if (options.lecam) {
      const ema = options.lecam.next(logitsReal, logitsFake);
      lecam = lecamRegularization(lr, lf, ema.real, ema.fake);
    }
    const total = tf.add(hinge, tf.mul(lecam, w)) as tf.Scalar;
    return { total, components: { hinge, lecam, logitsReal: stopGradient(logitsReal), logitsFake: stopGradient(logitsFake) } };
  });
}

/** L_GAN for the generator step: `nonSaturatingGeneratorLoss(D(x̂))`, gradient to x̂ (and D, which the caller does not step). */
export function generatorAdversarialLoss(disc: PatchDiscriminator, fake: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => nonSaturatingGeneratorLoss(disc.forward(fake)));
}

/** When the GAN term switches on. */
export interface GanSchedule {
  /** First step with a non-zero GAN weight. Defaults to 0 [P Table 1: the discriminator starts at step 0]. */
  start: number;
  /** Linear ramp length after `start` (0 = full weight at once, IBQ's `adopt_weight`). Defaults to 0. */
  rampSteps: number;
}

export const DEFAULT_GAN_SCHEDULE: Readonly<GanSchedule> = { start: 0, rampSteps: 0 };

/** The GAN factor at `step`: 0 before `start`, then `min(1, (step − start + 1)/rampSteps)` (1 without a ramp). */
export function ganFactor(step: number, schedule: Partial<GanSchedule> = {}): number {
  const { start, rampSteps } = { ...DEFAULT_GAN_SCHEDULE, ...schedule };
  if (!(start >= 0) || !(rampSteps >= 0))
    throw new LossConfigError(`ganFactor: start and rampSteps must be ≥ 0, got ${start} and ${rampSteps}`);
  if (step < start) return 0;
  return rampSteps > 0 ? Math.min(1, (step - start + 1) / rampSteps) : 1;
}

/** Options of `adaptiveGanWeight`. */
export interface AdaptiveWeightOptions {
  /** Multiplier of the ratio, taming's `disc_weight`. Defaults to 1 (IBQ's yaml sets 0.4, unused there). */
  discWeight?: number;
  /** Upper clamp of the ratio. Defaults to 1e4 [taming]. */
  max?: number;
  /** Added to the GAN gradient norm. Defaults to 1e-4 [taming]. */
  eps?: number;
}

/**
 * taming's `calculate_adaptive_weight` (off by default: IBQ and ETT use the fixed 0.1):
 * `clamp(‖∇_last L_rec‖ / (‖∇_last L_G‖ + eps), 0, max) · discWeight`, from the gradients of the
 * reconstruction and GAN losses w.r.t. the decoder's last layer (compute both with `tf.grads`
 * outside the main step; reusing the previous step's weight is a common shortcut). Reads two
 * numbers, so it is async; pass the result as `ganWeight` to `vqObjective`, which logs it.
 */
export async function adaptiveGanWeight(
  recGrad: tf.Tensor,
  ganGrad: tf.Tensor,
  options: AdaptiveWeightOptions = {},
): Promise<{ weight: number; recNorm: number; ganNorm: number }> {
  const discWeight = options.discWeight ?? 1;
  const max = options.max ?? 1e4;
  const eps = options.eps ?? 1e-4;
  const norms = tf.tidy(() => tf.stack([tf.norm(recGrad), tf.norm(ganGrad)]));
  const [recNorm, ganNorm] = await norms.data();
  norms.dispose();
  const ratio = Math.min(Math.max(recNorm / (ganNorm + eps), 0), max);
  return { weight: ratio * discWeight, recNorm, ganNorm };
}
