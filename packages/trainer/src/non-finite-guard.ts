/** Training stopped because too many consecutive steps had a NaN/Inf loss or gradient. */
export class TrainingDivergedError extends Error {
  constructor(
    readonly step: number,
    readonly consecutive: number,
    detail: string,
  ) {
    super(
      `Training stopped at step ${step}: ${consecutive} consecutive step(s) had a non-finite loss or gradient (${detail}); ` +
        'their updates were skipped. Lower the learning rate, set clipNorm, or check the data and loss for NaN/Inf; ' +
        'resume from the last checkpoint once fixed.',
    );
    this.name = 'TrainingDivergedError';
  }
}

/**
 * Counts consecutive bad steps. A bad step's update is skipped (nothing is applied, the step
 * counter and data still advance, as PyTorch AMP's GradScaler skips an overflowing step); after
 * `maxConsecutive` bad steps in a row the run stops.
 */
export class NonFiniteGuard {
  #consecutive = 0;
  #skipped = 0;

  constructor(readonly maxConsecutive: number) {}

  /** Records a step; throws `TrainingDivergedError` when the limit is reached. */
  record(step: number, finite: boolean, detail: string): void {
    if (finite) {
      this.#consecutive = 0;
      return;
    }
    this.#consecutive += 1;
    this.#skipped += 1;
    if (this.#consecutive >= this.maxConsecutive) throw new TrainingDivergedError(step, this.#consecutive, detail);
  }

  get consecutive(): number {
    return this.#consecutive;
  }

  get skipped(): number {
    return this.#skipped;
  }

  restore(state: { consecutive: number; skipped: number }): void {
    this.#consecutive = state.consecutive;
    this.#skipped = state.skipped;
  }
}
