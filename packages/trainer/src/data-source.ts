/**
 * Where batches come from. The trainer asks for one batch per micro-step and records `cursor()`
 * in every checkpoint; on resume it calls `restore(cursor)`, after which `next()` must return the
 * batch an uninterrupted run would have got next — that is what makes a resumed run identical.
 * `@ettjs/data`'s `DataLoader` has this shape (`cursor()` / `restore()`); adapt its iterator's
 * `next()` to return the batch or `undefined`.
 *
 * The trainer owns each batch once `next()` returns it and disposes every tensor in it (with
 * `tf.dispose`, which walks objects and arrays) after the step, unless `disposeBatches: false`.
 */
export interface DataSource<B> {
  /** The next batch, or `undefined` when the source is exhausted. */
  next(): Promise<B | undefined> | B | undefined;
  /** A JSON-serialisable position just past the last batch returned. */
  cursor(): unknown;
  /** Moves to a position returned by `cursor()`. */
  restore(cursor: unknown): void | Promise<void>;
}

/** The data source gave no batch at all, or ran out before the stages' steps were done. */
export class DataSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataSourceError';
  }
}
