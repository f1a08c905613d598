import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TestByteTokenizer } from '../test/helpers';
import { CaptionEncoder } from './caption-encoder';
import { type Batch, DataLoader, type DataLoaderConfig, type EpochReport } from './data-loader';
import { EmptyDatasetError } from './dataset';
import { SyntheticTextImages } from './synthetic';

const synth = new SyntheticTextImages();
const summary = (b: Batch) => ({
  epoch: b.epoch,
  keys: b.origins.map((o) => o.key),
  captions: b.captions,
  pixels: createHash('sha1').update(b.images).digest('hex'),
  cursor: b.cursor,
});

async function take(loader: DataLoader, n: number) {
  const out: ReturnType<typeof summary>[] = [];
  if (n === 0) return out;
  for await (const b of loader.batches()) {
    out.push(summary(b));
    if (out.length === n) break;
  }
  return out;
}

describe('DataLoader', () => {
  const ds = synth.dataset('train', 10);
  const quiet: Partial<DataLoaderConfig> = { onEpochEnd: () => {} };

  it('batches images NHWC with captions and fields, each epoch a seeded permutation', async () => {
    const loader = new DataLoader(ds, { batchSize: 4, ...quiet });
    const batches: Batch[] = [];
    for await (const b of loader.batches(2)) batches.push(b);
    expect(batches.map((b) => [b.epoch, b.size])).toEqual([
      [0, 4],
      [0, 4],
      [0, 2],
      [1, 4],
      [1, 4],
      [1, 2],
    ]);
    const b0 = batches[0]!;
    expect(b0.images.length).toBe(4 * 32 * 32 * 3);
    expect(b0.fields[0]!.text).toMatch(/^[A-Z0-9]{2}$/);
    expect(b0.captions[0]).toBe(synth.sample('train', Number(b0.origins[0]!.key!.split('#')[1])).caption);
    const epochKeys = (e: number) => batches.filter((b) => b.epoch === e).flatMap((b) => b.origins.map((o) => o.key));
    const all = Array.from({ length: 10 }, (_, i) => `train#${i}`);
    expect([...epochKeys(0)].sort()).toEqual([...all].sort());
    expect([...epochKeys(1)].sort()).toEqual([...all].sort());
    expect(epochKeys(0)).not.toEqual(epochKeys(1));
    expect(epochKeys(0)).not.toEqual(all);
    expect(loader.cursor()).toEqual({ seed: 0, epoch: 2, index: 0 });
    const other = await take(new DataLoader(ds, { batchSize: 4, seed: 1, ...quiet }), 1);
    expect(other[0]!.keys).not.toEqual(b0.origins.map((o) => o.key));
  });

  it('gives the same batches whatever the prefetch depth, and without shuffle keeps dataset order', async () => {
    const a = await take(new DataLoader(ds, { batchSize: 3, prefetch: 0, ...quiet }), 5);
    const b = await take(new DataLoader(ds, { batchSize: 3, prefetch: 4, ...quiet }), 5);
    expect(b).toEqual(a);
    const plain = await take(new DataLoader(ds, { batchSize: 5, shuffle: false, dropLast: true, ...quiet }), 3);
    expect(plain.map((p) => p.keys.join())).toEqual([0, 5, 0].map((s) => Array.from({ length: 5 }, (_, i) => `train#${s + i}`).join()));
  });

  it('resumes from a JSON cursor: the batches equal those of an uninterrupted loader (mid-epoch and across epochs)', async () => {
    const config = { batchSize: 3, ...quiet };
    const whole = await take(new DataLoader(ds, config), 9);
    for (const cut of [1, 3, 4, 7]) {
      const first = new DataLoader(ds, config);
      const head = await take(first, cut);
      const saved = JSON.parse(JSON.stringify(first.cursor()));
      expect(saved).toEqual(head[cut - 1]!.cursor);
      const resumed = DataLoader.fromCursor(ds, config, saved);
      const tail = await take(resumed, 9 - cut);
      expect([...head, ...tail]).toEqual(whole);
    }
  });

  it('tokenises captions into padded ids and labels', async () => {
    const enc = new CaptionEncoder(new TestByteTokenizer(), { maxLength: 48 });
    const [b] = await (async () => {
      for await (const x of new DataLoader(ds, { batchSize: 2, captionEncoder: enc, ...quiet }).batches()) return [x];
      return [];
    })();
    const t = b!.tokens!;
    expect([t.batch, t.length]).toEqual([2, 48]);
    expect(new TextDecoder().decode(Uint8Array.from(t.captionIds[1]!))).toBe(b!.captions[1]);
    expect(t.inputIds[0]).toBe(257);
  });

  it('checks its config and the dataset', async () => {
    expect(() => new DataLoader(ds, { batchSize: 0 })).toThrow(/batchSize/);
    expect(() => new DataLoader(ds, { imageSize: 64 })).toThrow(/renders 32px images but imageSize is 64/);
    expect(() => new DataLoader(ds, { onBadSample: 'ignore' as 'skip' })).toThrow(/onBadSample/);
    const empty = new DataLoader(synth.dataset('test', 0), quiet);
    await expect(take(empty, 1)).rejects.toThrow(EmptyDatasetError);
    await expect(take(empty, 1)).rejects.toThrow(/dataset synthetic test \(seed 0, 0 samples\) has no samples/);
    expect(() => new DataLoader(ds).restore({ seed: 0, epoch: -1, index: 0 })).toThrow(/expected \{seed, epoch, index\}/);
  });

  it('reports an empty skip list at epoch end and refuses concurrent iteration', async () => {
    const reports: EpochReport[] = [];
    const loader = new DataLoader(ds, { batchSize: 4, onEpochEnd: (r) => reports.push(r) });
    const it1 = loader.epoch();
    await it1.next();
    await expect(loader.epoch().next()).rejects.toThrow(/another iteration is in progress/);
    for await (const _ of it1) {
      /* drain */
    }
    expect(reports).toEqual([{ dataset: ds.description, epoch: 0, samples: 10, skipped: 0, issues: [] }]);
  });
});
