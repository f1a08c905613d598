/**
 * Codebook usage over a rolling window of steps, as LlamaGen's `codebook_used` buffer: the
 * fraction of codes selected at least once in the last `window` training batches. Batch
 * perplexity alone understates usage at small batch sizes (bshall/VectorQuantizedVAE#3): a batch
 * of 64 tokens can name at most 64 of 1024 codes.
 */
export class CodebookUsage {
  readonly #counts: Int32Array;
  readonly #history: Int32Array[] = [];
  #used = 0;

  constructor(
    readonly codebookSize: number,
    readonly window: number,
  ) {
    if (!Number.isInteger(window) || window < 1) throw new RangeError(`CodebookUsage: window must be an integer >= 1, got ${window}`);
    this.#counts = new Int32Array(codebookSize);
  }

  /** Records one batch of indices; the oldest batch leaves the window. */
  record(indices: Int32Array): void {
    const unique = uniqueCodes(indices, this.codebookSize);
    for (const k of unique) if (this.#counts[k]++ === 0) this.#used++;
    this.#history.push(unique);
    if (this.#history.length > this.window) {
      for (const k of this.#history.shift() as Int32Array) if (--this.#counts[k] === 0) this.#used--;
    }
  }

  /** Fraction of codes used in the window (0 before any batch). */
  get usage(): number {
    return this.#used / this.codebookSize;
  }

  /** Number of batches currently in the window. */
  get steps(): number {
    return this.#history.length;
  }

  /** Empties the window. */
  reset(): void {
    this.#counts.fill(0);
    this.#history.length = 0;
    this.#used = 0;
  }
}

/** Sorted distinct codes of a batch; throws on an index outside `[0, K)`. */
export function uniqueCodes(indices: Int32Array, codebookSize: number): Int32Array {
  const seen = new Uint8Array(codebookSize);
  let n = 0;
  for (const k of indices) {
    if (k < 0 || k >= codebookSize) throw new RangeError(`code index ${k} outside [0, ${codebookSize})`);
    if (!seen[k]) {
      seen[k] = 1;
      n++;
    }
  }
  const out = new Int32Array(n);
  let j = 0;
  for (let k = 0; k < codebookSize; k++) if (seen[k]) out[j++] = k;
  return out;
}

/**
 * Perplexity of the code histogram of one batch, `exp(−Σ p_k log p_k)`: K when every code is
 * equally used, 1 when one code takes every token.
 */
export function codePerplexity(indices: Int32Array, codebookSize: number): number {
  if (indices.length === 0) return 0;
  const counts = new Float64Array(codebookSize);
  for (const k of indices) counts[k]++;
  let h = 0;
  for (const c of counts) {
    if (c > 0) {
      const p = c / indices.length;
      h -= p * Math.log(p);
    }
  }
  return Math.exp(h);
}
