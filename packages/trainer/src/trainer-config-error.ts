/** A trainer, stage, optimizer or schedule option that is unknown, missing or out of range. */
export class TrainerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainerConfigError';
  }
}

/**
 * Rejects keys an options object does not know, so a typo (`warmupRatoi`) fails before training
 * instead of silently running with the default.
 */
export function checkKnownKeys(where: string, options: unknown, known: readonly string[]): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TrainerConfigError(
      `${where}: expected an options object, got ${Array.isArray(options) ? 'an array' : JSON.stringify(options)}`,
    );
  }
  const unknown = Object.keys(options).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new TrainerConfigError(`${where}: unknown key(s) ${unknown.map((k) => `"${k}"`).join(', ')}. Known keys: ${known.join(', ')}.`);
  }
}

export function checkInt(where: string, name: string, value: unknown, min: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new TrainerConfigError(`${where}: ${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
}

export function checkNumber(where: string, name: string, value: unknown, test: (v: number) => boolean, expected: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || !test(value)) {
    throw new TrainerConfigError(`${where}: ${name} must be ${expected}, got ${JSON.stringify(value)}`);
  }
}
