import type { CaptionEncoder, EncodedCaptions } from './caption-encoder';
import { type ImageCaptionDataset, type LoadedSample, type PendingRecord, type SampleOrigin, SampleError } from './dataset';
import type { SyntheticFields } from './synthetic';

/** What to do with a bad sample: drop it and count it, or stop with its file and line. */
export type BadSamplePolicy = 'skip' | 'error';

/**
 * Where the loader stands: record `index` of epoch `epoch` in the order keyed by `seed`. Plain
 * JSON; store it in a checkpoint and pass it to `DataLoader.fromCursor` to continue the same order.
 */
export interface DataCursor {
  seed: number;
  epoch: number;
  index: number;
}

/** A skipped sample and why. */
export interface SkippedSample extends SampleOrigin {
  reason: string;
}

/** End-of-epoch account of skipped samples (since the loader started or was restored). */
export interface EpochReport {
  dataset: string;
  epoch: number;
  /** Samples delivered in batches. */
  samples: number;
  /** Samples skipped. */
  skipped: number;
  /** The skipped samples, up to `maxReportedIssues`. */
  issues: SkippedSample[];
}

/** One batch: images NHWC `[B * H * W * 3]` in [-1, 1], captions, and optionally their tokens. */
export interface Batch {
  epoch: number;
  size: number;
  height: number;
  width: number;
  images: Float32Array;
  captions: string[];
  /** Ground-truth fields per sample (synthetic data), else `undefined` entries. */
  fields: (SyntheticFields | undefined)[];
  origins: SampleOrigin[];
  /** Present when the loader has a `captionEncoder`. */
  tokens?: EncodedCaptions;
  /** The cursor just past this batch: restoring it continues with the next batch. */
  cursor: DataCursor;
}

export interface DataLoaderConfig {
  /** Samples per batch. Defaults to 8. */
  batchSize: number;
  /** Square image side to decode to (the tokenizer's input size). Defaults to the dataset's own size; required for disk datasets. */
  imageSize?: number;
  /** Seed of the per-epoch order. Defaults to 0. */
  seed: number;
  /** Shuffle each epoch (records, or shards for WebDataset). Defaults to true. */
  shuffle: boolean;
  /** Drop the last, partial batch of an epoch. Defaults to false. */
  dropLast: boolean;
  /** Batches decoded ahead of the consumer. Defaults to 2. */
  prefetch: number;
  /** Bad-sample policy. Defaults to 'skip' (reported at the end of each epoch). */
  onBadSample: BadSamplePolicy;
  /** Tokenises captions into `batch.tokens`; over-long captions become bad samples. Defaults to none. */
  captionEncoder?: CaptionEncoder;
  /** Called at the end of each epoch. Defaults to a `console.warn` when something was skipped. */
  onEpochEnd?: (report: EpochReport) => void;
  /** Skipped samples kept in a report (all are counted). Defaults to 1000. */
  maxReportedIssues: number;
}

export const DEFAULT_DATA_LOADER_CONFIG: DataLoaderConfig = {
  batchSize: 8,
  seed: 0,
  shuffle: true,
  dropLast: false,
  prefetch: 2,
  onBadSample: 'skip',
  maxReportedIssues: 1000,
};

type Outcome = { ok: true; sample: LoadedSample; ids?: number[] } | { ok: false; error: SampleError };

function defaultEpochEnd(r: EpochReport): void {
  if (r.skipped === 0) return;
  const shown = r.issues
    .slice(0, 5)
    .map((i) => `  ${i.line !== undefined ? `${i.file}:${i.line}` : i.key !== undefined ? `${i.file}#${i.key}` : i.file}: ${i.reason}`)
    .join('\n');
  console.warn(
    `${r.dataset}: epoch ${r.epoch} skipped ${r.skipped} bad sample(s) of ${r.samples + r.skipped}:\n${shown}${r.skipped > 5 ? '\n  ...' : ''}`,
  );
}

/**
 * Batches an image–caption dataset: seeded per-epoch order, a resumable cursor, background
 * prefetch (records load while the consumer trains: file reads overlap, decoding runs on the main
 * thread between the consumer's awaits), caption tokenisation, and a bad-sample policy.
 */
export class DataLoader {
  readonly config: DataLoaderConfig;
  readonly imageSize: number;
  private state: DataCursor;
  private issues: SkippedSample[] = [];
  private skippedCount = 0;
  private delivered = 0;
  private running = false;

  constructor(
    readonly dataset: ImageCaptionDataset,
    config: Partial<DataLoaderConfig> = {},
  ) {
    const c: DataLoaderConfig = { ...DEFAULT_DATA_LOADER_CONFIG, ...config };
    this.config = c;
    if (!Number.isInteger(c.batchSize) || c.batchSize < 1)
      throw new Error(`DataLoader: batchSize must be a positive integer, got ${c.batchSize}`);
    if (!Number.isInteger(c.prefetch) || c.prefetch < 0)
      throw new Error(`DataLoader: prefetch must be a non-negative integer, got ${c.prefetch}`);
    if (c.onBadSample !== 'skip' && c.onBadSample !== 'error')
      throw new Error(`DataLoader: onBadSample must be 'skip' or 'error', got ${c.onBadSample}`);
    const size = c.imageSize ?? dataset.imageSize;
    if (size === undefined) throw new Error(`DataLoader: ${dataset.description} needs imageSize (the tokenizer's input side)`);
    if (dataset.imageSize !== undefined && dataset.imageSize !== size) {
      throw new Error(
        `DataLoader: ${dataset.description} renders ${dataset.imageSize}px images but imageSize is ${size}; configure the dataset's imageSize instead`,
      );
    }
    this.imageSize = size;
    this.state = { seed: c.seed, epoch: 0, index: 0 };
  }

  /** A loader positioned at `cursor` (its seed wins over `config.seed`). */
  static fromCursor(dataset: ImageCaptionDataset, config: Partial<DataLoaderConfig>, cursor: DataCursor): DataLoader {
    const loader = new DataLoader(dataset, config);
    loader.restore(cursor);
    return loader;
  }

  /** The position after the last batch handed out. */
  cursor(): DataCursor {
    return { ...this.state };
  }

  /** Moves to `cursor`; the next batch is the one an uninterrupted loader would give after it. */
  restore(cursor: DataCursor): void {
    if (this.running) throw new Error('DataLoader.restore: an iteration is in progress; finish or break it first');
    const ok = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
    if (!cursor || !Number.isInteger(cursor.seed) || !ok(cursor.epoch) || !ok(cursor.index)) {
      throw new Error(
        `DataLoader.restore: expected {seed, epoch, index} with non-negative integer epoch and index, got ${JSON.stringify(cursor)}`,
      );
    }
    this.state = { seed: cursor.seed, epoch: cursor.epoch, index: cursor.index };
    this.resetReport();
  }

  /** Skipped samples of the current epoch so far. */
  get skipped(): EpochReport {
    return {
      dataset: this.dataset.description,
      epoch: this.state.epoch,
      samples: this.delivered,
      skipped: this.skippedCount,
      issues: [...this.issues],
    };
  }

  /** Batches over `epochs` epochs (default: forever) from the cursor. */
  async *batches(epochs = Number.POSITIVE_INFINITY): AsyncGenerator<Batch> {
    for (let e = 0; e < epochs; e++) yield* this.epoch();
  }

  /** The remaining batches of the current epoch; at its end, reports skips and moves the cursor to the next epoch. */
  async *epoch(): AsyncGenerator<Batch> {
    if (this.running)
      throw new Error('DataLoader: another iteration is in progress; a loader has one cursor, so iterate it once at a time');
    this.running = true;
    try {
      yield* this.runEpoch();
    } finally {
      this.running = false;
    }
  }

  private resetReport(): void {
    this.issues = [];
    this.skippedCount = 0;
    this.delivered = 0;
  }

  private async *runEpoch(): AsyncGenerator<Batch> {
    const c = this.config;
    const { seed, epoch, index: start } = this.state;
    const records = this.dataset.records({ seed, epoch, shuffle: c.shuffle, start, imageSize: this.imageSize })[Symbol.asyncIterator]();
    const window = Math.max(1, c.prefetch) * c.batchSize;
    const queue: { position: number; outcome: Promise<Outcome> }[] = [];
    let next = start;
    let exhausted = false;
    let pending: { sample: LoadedSample; ids?: number[] }[] = [];
    try {
      for (;;) {
        while (!exhausted && queue.length < window) {
          const r = await records.next();
          if (r.done) exhausted = true;
          else queue.push({ position: next++, outcome: this.process(r.value) });
        }
        const head = queue.shift();
        if (!head) break;
        const out = await head.outcome;
        if (!out.ok) {
          if (c.onBadSample === 'error') throw out.error;
          this.skippedCount++;
          if (this.issues.length < c.maxReportedIssues) this.issues.push({ ...out.error.origin, reason: out.error.reason });
          continue;
        }
        pending.push(out);
        if (pending.length === c.batchSize) {
          const batch = this.makeBatch(pending, { seed, epoch, index: head.position + 1 });
          pending = [];
          yield batch;
        }
      }
      if (pending.length > 0 && !c.dropLast) yield this.makeBatch(pending, { seed, epoch, index: next });
      if (this.delivered === 0 && this.skippedCount > 0 && start === 0) {
        const first = this.issues[0];
        throw new Error(
          `dataset ${this.dataset.description} has no usable samples in epoch ${epoch}: all ${this.skippedCount} were skipped` +
            (first ? ` (first: ${first.line !== undefined ? `${first.file}:${first.line}` : first.file}: ${first.reason})` : ''),
        );
      }
      (c.onEpochEnd ?? defaultEpochEnd)(this.skipped);
      this.state = { seed, epoch: epoch + 1, index: 0 };
      this.resetReport();
    } finally {
      await records.return?.();
    }
  }

  /** Loads, checks and tokenises one record; never rejects, so a bad record is just an outcome. */
  private async process(record: PendingRecord): Promise<Outcome> {
    // Defer to a macrotask: the fill loop queues the whole window before any decoding blocks.
    await new Promise<void>((r) => setImmediate(r));
    const fail = (reason: string): Outcome => ({ ok: false, error: new SampleError(record.origin, reason) });
    let sample: LoadedSample;
    try {
      sample = await record.load();
    } catch (e) {
      return e instanceof SampleError ? { ok: false, error: e } : fail((e as Error).message ?? String(e));
    }
    if (sample.height !== this.imageSize || sample.width !== this.imageSize) {
      return fail(`image is ${sample.height}x${sample.width}, expected ${this.imageSize}x${this.imageSize}`);
    }
    if (sample.caption.trim() === '') return fail('empty caption');
    const enc = this.config.captionEncoder;
    if (!enc) return { ok: true, sample };
    try {
      return { ok: true, sample, ids: enc.tokenize(sample.caption) };
    } catch (e) {
      return fail((e as Error).message);
    }
  }

  private makeBatch(items: { sample: LoadedSample; ids?: number[] }[], cursor: DataCursor): Batch {
    const S = this.imageSize;
    const per = S * S * 3;
    const images = new Float32Array(items.length * per);
    for (const [i, it] of items.entries()) images.set(it.sample.image, i * per);
    this.delivered += items.length;
    this.state = cursor;
    const enc = this.config.captionEncoder;
    return {
      epoch: cursor.epoch,
      size: items.length,
      height: S,
      width: S,
      images,
      captions: items.map((it) => it.sample.caption),
      fields: items.map((it) => it.sample.fields),
      origins: items.map((it) => it.sample.origin),
      tokens: enc ? enc.pad(items.map((it) => it.ids!)) : undefined,
      cursor: { ...cursor },
    };
  }
}
