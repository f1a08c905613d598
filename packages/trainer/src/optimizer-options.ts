import { AdamW, type ParamGroup } from '@ettjs/core';
import { TrainerConfigError, checkKnownKeys, checkNumber } from './trainer-config-error';

/**
 * A stage's optimizer. Both kinds are core's `AdamW` (PyTorch's update rule):
 * - `adamw`: decoupled weight decay `weightDecay` on matrices (not on norms and biases).
 * - `adam`: no weight decay (`weightDecay` must be 0 or absent). Tokenizer pretraining uses it with
 *   IBQ's betas `[0.5, 0.9]` (`IBQ_ADAM_BETAS`).
 */
export interface OptimizerOptions {
  kind: 'adamw' | 'adam';
  /** Base learning rate (the schedule scales it). Required. Paper: 4e-5 (stages 1–2), 2e-5 (stage 3). */
  lr: number;
  /** Moment decay rates. Defaults to `[0.9, 0.999]` (PyTorch). */
  betas?: [number, number];
  /** Defaults to 1e-8 (PyTorch). */
  eps?: number;
  /** Decoupled weight decay for `adamw`. Defaults to 0.01 (PyTorch AdamW); `adam` has none. */
  weightDecay?: number;
}

/** IBQ / VQGAN's discriminator and tokenizer Adam betas (paper stage 0: "Adam (β1 0.5, β2 0.9)"). */
export const IBQ_ADAM_BETAS: [number, number] = [0.5, 0.9];

const KEYS = ['kind', 'lr', 'betas', 'eps', 'weightDecay'] as const;

export function validateOptimizerOptions(where: string, o: unknown, partial: boolean): void {
  checkKnownKeys(where, o, KEYS);
  const opts = o as Partial<OptimizerOptions>;
  if (!(partial && opts.kind === undefined) && opts.kind !== 'adamw' && opts.kind !== 'adam') {
    throw new TrainerConfigError(`${where}: kind must be 'adamw' or 'adam', got ${JSON.stringify(opts.kind)}`);
  }
  if (!(partial && opts.lr === undefined)) checkNumber(where, 'lr', opts.lr, (v) => v >= 0, 'a number >= 0');
  if (
    opts.betas !== undefined &&
    (!Array.isArray(opts.betas) || opts.betas.length !== 2 || !opts.betas.every((b) => typeof b === 'number' && b >= 0 && b < 1))
  ) {
    throw new TrainerConfigError(`${where}: betas must be two numbers in [0, 1), got ${JSON.stringify(opts.betas)}`);
  }
  if (opts.eps !== undefined) checkNumber(where, 'eps', opts.eps, (v) => v >= 0, 'a number >= 0');
  if (opts.weightDecay !== undefined) checkNumber(where, 'weightDecay', opts.weightDecay, (v) => v >= 0, 'a number >= 0');
  if (opts.kind === 'adam' && opts.weightDecay) {
    throw new TrainerConfigError(`${where}: kind 'adam' has no weight decay, got weightDecay ${opts.weightDecay}; use kind 'adamw'`);
  }
}

/** Resolved hyperparameters (defaults applied). */
export function resolveOptimizerOptions(o: OptimizerOptions): Required<OptimizerOptions> {
  return {
    kind: o.kind,
    lr: o.lr,
    betas: o.betas ?? [0.9, 0.999],
    eps: o.eps ?? 1e-8,
    weightDecay: o.kind === 'adam' ? 0 : (o.weightDecay ?? 0.01),
  };
}

/** Builds core's AdamW over parameter groups with the resolved options as defaults. */
export function buildOptimizer(o: OptimizerOptions, groups: ParamGroup[]): AdamW {
  const r = resolveOptimizerOptions(o);
  return new AdamW(groups, { lr: r.lr, betas: r.betas, eps: r.eps, weightDecay: r.weightDecay });
}
