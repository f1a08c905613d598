/** Rejects keys a config does not know, so a typo (`hiddenDims`) fails instead of being ignored. */
export function checkConfigKeys(owner: string, config: object, known: readonly string[]): void {
  const unknown = Object.keys(config).filter((k) => !known.includes(k));
  if (unknown.length > 0) {
    throw new Error(`${owner}: unknown config key(s) ${unknown.map((k) => `"${k}"`).join(', ')}; known keys: ${known.join(', ')}`);
  }
}

export function checkPositiveInt(owner: string, name: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new Error(`${owner}: ${name} must be a positive integer, got ${JSON.stringify(value)}`);
  }
}
