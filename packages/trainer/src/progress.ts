import cliProgress from 'cli-progress';
import type { StepRecord } from './checkpoint';

/**
 * How progress is shown: `'bar'` is a cli-progress bar with ETA (for a terminal), `'lines'` a plain
 * line every `progressEvery` steps (for logs and CI, where a redrawn bar is noise), `'none'` nothing.
 * `'auto'` (the default) picks `'bar'` when stderr is a TTY, else `'lines'`.
 */
export type ProgressMode = 'auto' | 'bar' | 'lines' | 'none';

export interface ProgressReporter {
  /** A stage starts at `done` of `total` steps. */
  start(stage: string, total: number, done: number): void;
  update(record: StepRecord): void;
  stop(): void;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toFixed(4) : x.toExponential(3)) : String(x);
}

/** Plain lines: `[semantic] step 120/1000 loss 2.3412 lr 3.960e-5 gnorm 0.8123 | 0.21 s/step, ETA 3m04s`. */
export class LineProgress implements ProgressReporter {
  #stage = '';
  #total = 0;
  #startedAt = 0;
  #startStep = 0;

  constructor(
    readonly every: number,
    readonly print: (line: string) => void,
  ) {}

  start(stage: string, total: number, done: number): void {
    this.#stage = stage;
    this.#total = total;
    this.#startStep = done;
    this.#startedAt = performance.now();
    this.print(`[${stage}] starting at step ${done}/${total}`);
  }

  update(r: StepRecord): void {
    if (r.stageStep % this.every !== 0 && r.stageStep !== this.#total && !r.skipped) return;
    const perStep = (performance.now() - this.#startedAt) / 1000 / Math.max(1, r.stageStep - this.#startStep);
    const eta = perStep * (this.#total - r.stageStep);
    const skipped = r.skipped ? ' SKIPPED (non-finite loss or gradient)' : '';
    this.print(
      `[${this.#stage}] step ${r.stageStep}/${this.#total} loss ${fmt(r.loss.total)} lr ${fmt(r.lr)} gnorm ${fmt(r.gradNorm)}${skipped} | ${perStep.toFixed(2)} s/step, ETA ${formatDuration(eta)}`,
    );
  }

  stop(): void {}
}

/** A cli-progress bar on stderr, with ETA from cli-progress's moving average. */
export class BarProgress implements ProgressReporter {
  #bar: cliProgress.SingleBar | null = null;

  start(stage: string, total: number, done: number): void {
    this.stop();
    this.#bar = new cliProgress.SingleBar(
      {
        format: `[${stage}] {bar} {value}/{total} | loss {loss} | lr {lr} | {duration_formatted} elapsed, ETA {eta_formatted}`,
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    this.#bar.start(total, done, { loss: '-', lr: '-' });
  }

  update(r: StepRecord): void {
    this.#bar?.update(r.stageStep, { loss: fmt(r.loss.total), lr: fmt(r.lr) });
  }

  stop(): void {
    this.#bar?.stop();
    this.#bar = null;
  }
}

class NoProgress implements ProgressReporter {
  start(): void {}
  update(): void {}
  stop(): void {}
}

export function createProgress(mode: ProgressMode, every: number, print: (line: string) => void): ProgressReporter {
  const resolved = mode === 'auto' ? (process.stderr.isTTY ? 'bar' : 'lines') : mode;
  if (resolved === 'bar') return new BarProgress();
  if (resolved === 'lines') return new LineProgress(every, print);
  return new NoProgress();
}
