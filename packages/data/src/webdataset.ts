import { resolve } from 'node:path';
import {
  type EpochOrder,
  EmptyDatasetError,
  type ImageCaptionDataset,
  imageCaptionSample,
  type PendingRecord,
  SampleError,
} from './dataset';
import { epochPermutation } from './keyed-random';
import { expandShards } from './shard-pattern';
import { readTarFile, TarError } from './tar';

export interface WebDatasetConfig {
  /** Directory relative shard patterns resolve against. Defaults to `process.cwd()`. */
  cwd: string;
  /** JSON field holding the caption when a sample has `.json` but no `.txt`. Defaults to 'caption'. */
  captionField: string;
}

export const DEFAULT_WEBDATASET_CONFIG: WebDatasetConfig = { cwd: '', captionField: 'caption' };

const IMAGE_KEYS = ['jpg', 'jpeg', 'png'];
const utf8 = new TextDecoder();

/** WebDataset's split of a member name: key = path up to the first dot of the basename, extension = the rest. */
function splitMember(name: string): { key: string; ext: string } {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot < 0) return { key: name, ext: '' };
  return { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() };
}

/**
 * WebDataset tar shards (`{key}.jpg` + `{key}.txt`/`{key}.json`, consecutive members per key): the
 * format LAION/DataComp-scale corpora ship in. Shards stream in order, one at a time; with
 * shuffling the shard order is permuted per epoch from the seed (samples keep their order within a
 * shard, as with WebDataset's shard shuffle and no sample buffer). A truncated or corrupt shard
 * counts as one bad record and the epoch goes on with the next shard.
 */
export class WebDataset implements ImageCaptionDataset {
  readonly description: string;
  readonly shards: readonly string[];
  readonly config: WebDatasetConfig;

  /** `shards`: a brace/glob pattern (`data/shard-{0000..0099}.tar`) or a list of paths. */
  constructor(shards: string | readonly string[], config: Partial<WebDatasetConfig> = {}) {
    this.config = { ...DEFAULT_WEBDATASET_CONFIG, ...config };
    const cwd = this.config.cwd || process.cwd();
    this.shards = typeof shards === 'string' ? expandShards(shards, cwd) : shards.map((s) => resolve(cwd, s));
    this.description = `webdataset ${typeof shards === 'string' ? shards : `[${shards.length} shards]`}`;
  }

  async *records(order: EpochOrder): AsyncGenerator<PendingRecord> {
    if (this.shards.length === 0) throw new EmptyDatasetError(this.description, 'the shard pattern matched no files');
    const perm = order.shuffle ? epochPermutation(this.shards.length, order.seed, order.epoch) : null;
    let position = 0;
    for (let s = 0; s < this.shards.length; s++) {
      const shard = this.shards[perm ? perm[s]! : s]!;
      let key: string | undefined;
      let members = new Map<string, Uint8Array>();
      const flush = (): PendingRecord | undefined => {
        if (key === undefined) return undefined;
        const rec = this.toRecord(shard, key, members, order.imageSize);
        key = undefined;
        members = new Map();
        return rec;
      };
      try {
        for await (const entry of readTarFile(shard)) {
          const m = splitMember(entry.name);
          if (m.key !== key) {
            const rec = flush();
            if (rec && position++ >= order.start) yield rec;
            key = m.key;
          }
          members.set(m.ext, entry.data);
        }
        const rec = flush();
        if (rec && position++ >= order.start) yield rec;
      } catch (e) {
        // A member that failed to read starts a new sample: the one assembled so far is complete.
        const failedKey = e instanceof TarError && e.member ? splitMember(e.member).key : key;
        if (failedKey !== key) {
          const rec = flush();
          if (rec && position++ >= order.start) yield rec;
        }
        // The sample being assembled is incomplete: report it (or the shard) as one bad record.
        const origin = { file: shard, key: failedKey ?? '(archive)' };
        const reason = (e as Error).message;
        key = undefined;
        if (position++ >= order.start) yield { origin, load: () => Promise.reject(new SampleError(origin, reason)) };
      }
    }
    if (position === 0) throw new EmptyDatasetError(this.description, 'its shards contain no samples');
  }

  private toRecord(shard: string, key: string, members: Map<string, Uint8Array>, imageSize: number): PendingRecord {
    const origin = { file: shard, key };
    const fail = (reason: string): PendingRecord => ({ origin, load: () => Promise.reject(new SampleError(origin, reason)) });
    const imageExt = IMAGE_KEYS.find((k) => members.has(k));
    const found = [...members.keys()].map((e) => `.${e}`).join(', ');
    if (!imageExt) return fail(`no image (.jpg, .jpeg or .png) among members ${found}`);
    let caption: string | undefined;
    const txt = members.get('txt');
    if (txt) caption = utf8.decode(txt).trim();
    else {
      const json = members.get('json');
      if (!json) return fail(`no caption (.txt, or .json with "${this.config.captionField}") among members ${found}`);
      try {
        const value = (JSON.parse(utf8.decode(json)) as Record<string, unknown>)[this.config.captionField];
        if (typeof value !== 'string') return fail(`${key}.json has no string field "${this.config.captionField}"`);
        caption = value.trim();
      } catch (e) {
        return fail(`${key}.json is not valid JSON (${(e as Error).message})`);
      }
    }
    const bytes = members.get(imageExt)!;
    const text = caption;
    return { origin, load: async () => imageCaptionSample(bytes, `${shard}#${key}.${imageExt}`, text, origin, imageSize) };
  }
}
