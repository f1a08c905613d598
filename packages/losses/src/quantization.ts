import { stopGradient } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Where β goes. `'codebook'`: β scales the codebook term `mean((e − sg(z))²)`, as IBQ's code does
 * (and taming's `legacy=True`); this is what IBQ and ETT trained with. `'commitment'`: β scales the
 * commitment term `mean((sg(e) − z)²)`, as in VQ-VAE and IBQ paper Eq. 10 (taming `legacy=False`).
 * See SEED-Voken issues #50/#60, taming #46/#57 (PAPER.md §2).
 */
export type BetaPlacement = 'codebook' | 'commitment';

/** Options of the quantisation terms. */
export interface QuantLossOptions {
  /** β. Defaults to 0.25 [P §4.1, IBQ yaml]. */
  beta?: number;
  /** Which term β scales. Defaults to `'codebook'` (IBQ's code). */
  betaOn?: BetaPlacement;
}

function check(op: string, a: tf.Tensor, b: tf.Tensor, o: QuantLossOptions): { beta: number; betaOn: BetaPlacement } {
  if (!tf.util.arraysEqual(a.shape, b.shape)) throw new Error(`${op}: z [${a.shape}] and the quantised latents [${b.shape}] must match`);
  const beta = o.beta ?? 0.25;
  const betaOn = o.betaOn ?? 'codebook';
  if (!(beta >= 0) || !Number.isFinite(beta)) throw new Error(`${op}: beta must be a finite number ≥ 0, got ${beta}`);
  if (betaOn !== 'codebook' && betaOn !== 'commitment')
    throw new Error(`${op}: betaOn must be 'codebook' or 'commitment', got '${betaOn}'`);
  return { beta, betaOn };
}

/**
 * Classic VQ terms on the raw lookup `zqHard = E[argmin]` (compute them BEFORE the straight-through
 * substitution, or the codebook receives the encoder's gradient — PAPER.md §6):
 * commitment `mean((sg(zqHard) − z)²)` + codebook `mean((zqHard − sg(z))²)`, β on one of them.
 */
export function vqQuantLoss(z: tf.Tensor, zqHard: tf.Tensor, options: QuantLossOptions = {}): tf.Scalar {
  const { beta, betaOn } = check('vqQuantLoss', z, zqHard, options);
  return tf.tidy(() => {
    const commitment = tf.mean(tf.squaredDifference(stopGradient(zqHard), z));
    const codebook = tf.mean(tf.squaredDifference(zqHard, stopGradient(z)));
    const [wCommit, wCode] = betaOn === 'codebook' ? [1, beta] : [beta, 1];
    return tf.add(tf.mul(commitment, wCommit), tf.mul(codebook, wCode)) as tf.Scalar;
  });
}

/**
 * IBQ's quantisation loss L_quant [IBQ quantize.py, PAPER.md §2]:
 * `mean((zq − z)²) + mean((sg(zqHard) − z)²) + β·mean((zqHard − sg(z))²)` (β on the codebook term
 * by default), where `zq = (hard − sg(soft) + soft)·E` is the straight-through output and
 * `zqHard = hard·E` the plain lookup. The first term sends gradient through the softmax to every
 * code row; the other two are `vqQuantLoss`.
 */
export function ibqQuantLoss(input: { z: tf.Tensor; zq: tf.Tensor; zqHard: tf.Tensor }, options: QuantLossOptions = {}): tf.Scalar {
  const { z, zq, zqHard } = input;
  check('ibqQuantLoss', z, zq, options);
  return tf.tidy(() => tf.add(tf.mean(tf.squaredDifference(zq, z)), vqQuantLoss(z, zqHard, options)) as tf.Scalar);
}
