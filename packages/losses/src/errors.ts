/**
 * A loss configuration the package cannot use: an unknown weight name, a negative or non-finite
 * weight, a missing term. The message lists what is valid.
 */
export class LossConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LossConfigError';
  }
}

/** A loss component that came out NaN or infinite. `component` names it, `step` says when. */
export class LossComponentError extends Error {
  constructor(
    readonly component: string,
    readonly value: number,
    readonly step?: number,
  ) {
    const what = Number.isNaN(value) ? 'NaN' : value > 0 ? '+Infinity' : '-Infinity';
    super(
      `LossComponentError: component "${component}" is ${what}${step === undefined ? '' : ` at step ${step}`}. ` +
        'Check the inputs of that term (out-of-range labels make the cross-entropies NaN on purpose), lower the learning rate, ' +
        'or enable gradient clipping.',
    );
    this.name = 'LossComponentError';
  }
}
