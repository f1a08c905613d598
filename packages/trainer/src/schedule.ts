import { TrainerConfigError, checkInt, checkKnownKeys, checkNumber } from './trainer-config-error';

/**
 * Learning-rate schedule of a stage, as a factor on each group's base rate.
 *
 * - `constant`: factor 1 (IBQ's tokenizer pretraining, stage 0).
 * - `warmup-cosine`: linear warmup, then cosine decay to `minLrRatio` — the paper's stages 1–3
 *   ("warmup ratio 0.03 then cosine decay"). The formula is HF transformers'
 *   `get_cosine_with_min_lr_schedule_with_warmup` (which the LLaVA/EVE recipes the paper follows
 *   run through), evaluated at the number of updates already taken: the first update uses
 *   `0 / warmupSteps = 0`, exactly as HF does.
 */
export type Schedule =
  | { kind: 'constant' }
  | {
      kind: 'warmup-cosine';
      /** Fraction of the stage's steps spent warming up. Defaults to 0.03 (paper, stages 1–3). */
      warmupRatio?: number;
      /** Warmup length in steps; overrides `warmupRatio`. Defaults to `ceil(warmupRatio · steps)` (HF). */
      warmupSteps?: number;
      /** Final rate as a fraction of the base rate. Defaults to 0 (HF's plain cosine schedule). */
      minLrRatio?: number;
    };

/** The paper's warmup fraction for stages 1–3. */
export const PAPER_WARMUP_RATIO = 0.03;

export function validateSchedule(where: string, schedule: unknown): Schedule {
  checkKnownKeys(where, schedule, ['kind', 'warmupRatio', 'warmupSteps', 'minLrRatio']);
  const s = schedule as Schedule;
  if (s.kind === 'constant') {
    checkKnownKeys(where, s, ['kind']);
    return s;
  }
  if (s.kind !== 'warmup-cosine') {
    throw new TrainerConfigError(
      `${where}: kind must be 'constant' or 'warmup-cosine', got ${JSON.stringify((s as { kind: unknown }).kind)}`,
    );
  }
  if (s.warmupRatio !== undefined) checkNumber(where, 'warmupRatio', s.warmupRatio, (v) => v >= 0 && v < 1, 'a number in [0, 1)');
  if (s.warmupSteps !== undefined) checkInt(where, 'warmupSteps', s.warmupSteps, 0);
  if (s.minLrRatio !== undefined) checkNumber(where, 'minLrRatio', s.minLrRatio, (v) => v >= 0 && v <= 1, 'a number in [0, 1]');
  return s;
}

/** Warmup length of a schedule over `totalSteps` updates. */
export function warmupSteps(schedule: Schedule, totalSteps: number): number {
  if (schedule.kind === 'constant') return 0;
  return schedule.warmupSteps ?? Math.ceil((schedule.warmupRatio ?? PAPER_WARMUP_RATIO) * totalSteps);
}

/** Factor on the base learning rate for the update that follows `step` completed updates (0-based). */
export function learningRateFactor(schedule: Schedule, step: number, totalSteps: number): number {
  if (schedule.kind === 'constant') return 1;
  const warmup = warmupSteps(schedule, totalSteps);
  if (step < warmup) return step / Math.max(1, warmup);
  const minRatio = schedule.minLrRatio ?? 0;
  const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
  return Math.max(0, minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
