import { decodeImage } from './image-decode';
import { resizeCenterCrop } from './image-resize';
import { epochPermutation } from './keyed-random';
import type { SyntheticFields } from './synthetic';

/** Where a sample came from, so a bad one can be reported by file and line (or tar member). */
export interface SampleOrigin {
  /** The file holding the sample: JSONL file, image file or tar shard. */
  file: string;
  /** 1-based line in a JSONL file. */
  line?: number;
  /** Sample key: a WebDataset member key, or a synthetic `split#index`. */
  key?: string;
}

/** `file:line`, `file#key` or `file`. */
export function formatOrigin(origin: SampleOrigin): string {
  if (origin.line !== undefined) return `${origin.file}:${origin.line}`;
  if (origin.key !== undefined) return `${origin.file}#${origin.key}`;
  return origin.file;
}

/** A decoded sample: image NHWC float32 in [-1, 1] (`[H * W * 3]`, row-major) and its caption. */
export interface LoadedSample {
  image: Float32Array;
  height: number;
  width: number;
  caption: string;
  /** Ground-truth fields, for datasets that know them (the synthetic one). */
  fields?: SyntheticFields;
  origin: SampleOrigin;
}

/** A record of an epoch, not yet decoded: `load` reads and decodes it, rejecting with a `SampleError`. */
export interface PendingRecord {
  readonly origin: SampleOrigin;
  load(): Promise<LoadedSample>;
}

/** What a dataset needs to list one epoch's records. */
export interface EpochOrder {
  seed: number;
  epoch: number;
  /** Shuffle records (indexed datasets) or shards (WebDataset) by `(seed, epoch)`. */
  shuffle: boolean;
  /** Position in the epoch's record order to start from (a cursor's `index`). */
  start: number;
  /** Side of the square images to produce (the tokenizer's input size). */
  imageSize: number;
}

/** A source of image–caption records that the `DataLoader` batches. */
export interface ImageCaptionDataset {
  /** Human-readable name used in errors, e.g. `jsonl captions.jsonl`. */
  readonly description: string;
  /** Set by datasets that render at a fixed size (the synthetic one); the loader checks it. */
  readonly imageSize?: number;
  /** The records of one epoch in order, from `order.start`. Throws `EmptyDatasetError` when there are none. */
  records(order: EpochOrder): AsyncIterable<PendingRecord>;
}

/** One bad sample: which, and why. */
export class SampleError extends Error {
  constructor(
    readonly origin: SampleOrigin,
    readonly reason: string,
  ) {
    super(`${formatOrigin(origin)}: ${reason}`);
    this.name = 'SampleError';
  }
}

/** A dataset with nothing in it: a wrong path, glob or empty file. */
export class EmptyDatasetError extends Error {
  constructor(description: string, hint = 'check the path, pattern or file contents') {
    super(`dataset ${description} has no samples; ${hint}`);
    this.name = 'EmptyDatasetError';
  }
}

/** Base of random-access datasets: the epoch order is a permutation of `[0, length)` keyed by `(seed, epoch)`. */
export abstract class IndexedDataset implements ImageCaptionDataset {
  abstract readonly description: string;
  readonly imageSize?: number;
  abstract get length(): number;
  abstract origin(index: number): SampleOrigin;
  /** Reads and decodes record `index`; rejects with a `SampleError` for bad input. */
  abstract load(index: number, imageSize: number): Promise<LoadedSample>;

  async *records(order: EpochOrder): AsyncGenerator<PendingRecord> {
    const n = this.length;
    if (n === 0) throw new EmptyDatasetError(this.description);
    const perm = order.shuffle ? epochPermutation(n, order.seed, order.epoch) : null;
    for (let p = order.start; p < n; p++) {
      const index = perm ? perm[p]! : p;
      yield { origin: this.origin(index), load: () => this.load(index, order.imageSize) };
    }
  }
}

/** Decodes image bytes, fits them to `imageSize` and pairs them with a caption; bad bytes become a `SampleError`. */
export function imageCaptionSample(
  bytes: Uint8Array,
  imageName: string,
  caption: string,
  origin: SampleOrigin,
  imageSize: number,
): LoadedSample {
  let image: Float32Array;
  try {
    image = resizeCenterCrop(decodeImage(bytes, imageName), imageSize);
  } catch (e) {
    throw new SampleError(origin, (e as Error).message);
  }
  return { image, height: imageSize, width: imageSize, caption, origin };
}
