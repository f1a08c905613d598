import { LossConfigError } from './errors';

/**
 * The weight α of L_vq in `L_cap + α·L_vq` over training steps. `constant`: α throughout (0.25 in
 * the paper [P §4.4]); `warmup`: a linear ramp from 0 at step 0 to `value` at step `steps`, then
 * constant (ours: lets the caption loss settle before reconstruction pulls back).
 */
export type AlphaSchedule = { kind: 'constant'; value: number } | { kind: 'warmup'; value: number; steps: number };

/** ETT's α [P §4.4, Table 5]. */
export const DEFAULT_ALPHA: Readonly<AlphaSchedule> = { kind: 'constant', value: 0.25 };

/** α at `step` (0-based). Throws `LossConfigError` on a negative or non-finite value or an unknown kind. */
export function alphaAt(schedule: AlphaSchedule, step: number): number {
  if (!(schedule.value >= 0) || !Number.isFinite(schedule.value)) {
    throw new LossConfigError(`alpha: value must be a finite number ≥ 0, got ${schedule.value}`);
  }
  if (!(step >= 0)) throw new LossConfigError(`alpha: step must be ≥ 0, got ${step}`);
  switch (schedule.kind) {
    case 'constant':
      return schedule.value;
    case 'warmup':
      if (!(schedule.steps > 0)) throw new LossConfigError(`alpha: warmup steps must be > 0, got ${schedule.steps}`);
      return schedule.value * Math.min(1, step / schedule.steps);
    default:
      throw new LossConfigError(`alpha: unknown schedule kind '${(schedule as { kind: string }).kind}'; valid kinds: 'constant', 'warmup'`);
  }
}
