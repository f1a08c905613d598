import type { SyntheticConfig } from '@ettjs/data';
import type { EvalReport } from './evaluate';

/** Per-field caption scores on the synthetic set (fractions in [0, 1]). */
export interface FieldScores {
  shape: number;
  colour: number;
  position: number;
  textExact: number;
  textChar: number;
}

export const FIELDS: readonly (keyof FieldScores)[] = ['shape', 'colour', 'position', 'textExact', 'textChar'];

/** How each field is called in tables and logs. */
export const FIELD_LABELS: Readonly<Record<keyof FieldScores, string>> = {
  shape: 'shape',
  colour: 'colour',
  position: 'position',
  textExact: 'text exact',
  textChar: 'text chars',
};

/**
 * What a captioner that ignores the image scores on each field: one over the number of values the
 * field takes (the synthetic set draws every value uniformly, so the best constant guess scores the
 * same). The text is scored per character (`textChar`) and as a whole string (`textExact`, one over
 * the number of strings). Scores with a first shape only: `shapesPerImage` does not change them.
 */
export function chanceLevels(config: Pick<SyntheticConfig, 'shapes' | 'colours' | 'positions' | 'charset' | 'textLength'>): FieldScores {
  const chars = new Set(config.charset).size;
  const [minLen, maxLen] = config.textLength;
  let strings = 0;
  for (let n = minLen; n <= maxLen; n++) strings += chars ** n;
  return {
    shape: 1 / config.shapes.length,
    colour: 1 / config.colours.length,
    position: 1 / config.positions.length,
    textExact: 1 / strings,
    textChar: 1 / chars,
  };
}

/**
 * Whether an accuracy measured on `samples` samples is indistinguishable from `chance`: not more
 * than 2.33 binomial standard errors above it (one-sided, 1 % false alarms when the model guesses).
 */
export function isAtChance(accuracy: number, chance: number, samples: number): boolean {
  const se = Math.sqrt((chance * (1 - chance)) / Math.max(1, samples));
  return accuracy <= chance + 2.33 * se;
}

/** The fields of `scores` that are at chance (see `isAtChance`). */
export function fieldsAtChance(scores: FieldScores, chance: FieldScores, samples: number): (keyof FieldScores)[] {
  // Exact text is left out: its chance is ~0.1 %, so it says nothing the per-character score does not.
  return FIELDS.filter((f) => f !== 'textExact' && isAtChance(scores[f], chance[f], samples));
}

/** One field's difference between two arms scored on the same samples. */
export interface FieldDifference {
  field: keyof FieldScores;
  /** `b − a` in percentage points. */
  points: number;
  /** Two standard errors of that difference, in points (binomial, arms treated as independent). */
  noise: number;
  /** |points| > noise. */
  clear: boolean;
}

/** Per-field difference `b − a` of two evaluations on the same `samples` samples, with its noise. */
export function compareFields(a: FieldScores, b: FieldScores, samples: number): FieldDifference[] {
  return FIELDS.map((field) => {
    const [p, q] = [a[field], b[field]];
    const noise = 200 * Math.sqrt((p * (1 - p) + q * (1 - q)) / Math.max(1, samples));
    const points = 100 * (q - p);
    return { field, points, noise, clear: Math.abs(points) > noise };
  });
}

/**
 * One line saying what end-to-end tuning changed against a frozen arm: each field's difference in
 * points (marked `~` where it is inside two standard errors), ΔPSNR and Δ code usage, and a verdict
 * that says so when no caption field moved beyond noise.
 */
export function describeArmDifference(
  frozen: Pick<EvalReport, keyof FieldScores | 'psnr' | 'usage' | 'samples'>,
  tuned: Pick<EvalReport, keyof FieldScores | 'psnr' | 'usage' | 'samples'>,
  names: { frozen: string; tuned: string },
): string {
  const n = Math.min(frozen.samples, tuned.samples);
  const diffs = compareFields(frozen, tuned, n);
  const sign = (x: number, digits: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}`;
  const parts = diffs.map((d) => `${FIELD_LABELS[d.field]} ${sign(d.points, 1)}${d.clear ? '' : '~'}`);
  const clear = diffs.filter((d) => d.clear);
  const verdict =
    clear.length === 0
      ? 'no caption field differs beyond noise'
      : `beyond noise: ${clear.map((d) => `${FIELD_LABELS[d.field]} ${d.points > 0 ? 'better' : 'worse'}`).join(', ')}`;
  return `${names.tuned} vs ${names.frozen} (${n} samples; points, ~ = within 2 standard errors): ${parts.join(', ')}; PSNR ${sign(tuned.psnr - frozen.psnr, 2)} dB; code usage ${sign(100 * (tuned.usage - frozen.usage), 1)} points; ${verdict}`;
}
