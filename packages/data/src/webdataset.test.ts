import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gnuTar, jpegBytes, pngBytes, rgb, tempDir } from '../test/helpers';
import { type Batch, DataLoader, type DataLoaderConfig, type EpochReport } from './data-loader';
import { WebDataset } from './webdataset';

const t = tempDir();
afterAll(t.cleanup);

// Three shards of WebDataset samples built with GNU tar: {key}.jpg + .txt, or {key}.png + .json.
const shardCaptions: string[][] = [];
for (let s = 0; s < 3; s++) {
  const dir = join(t.dir, `src${s}`);
  mkdirSync(dir);
  const members: string[] = [];
  const caps: string[] = [];
  for (let k = 0; k < 3; k++) {
    const key = `s${s}-${String(k).padStart(4, '0')}`;
    const caption = `shard ${s} sample ${k}`;
    caps.push(caption);
    const img = rgb(10, 10, () => [s * 100, k * 100, 50]);
    if (k === 1) {
      writeFileSync(join(dir, `${key}.png`), pngBytes(10, 10, img));
      writeFileSync(join(dir, `${key}.json`), JSON.stringify({ caption, url: 'x' }));
      members.push(`${key}.png`, `${key}.json`);
    } else {
      writeFileSync(join(dir, `${key}.jpg`), jpegBytes(10, 10, img));
      writeFileSync(join(dir, `${key}.txt`), caption);
      members.push(`${key}.jpg`, `${key}.txt`);
    }
  }
  shardCaptions.push(caps);
  gnuTar(join(t.dir, `shard-${String(s).padStart(3, '0')}.tar`), dir, members);
}

const quiet: Partial<DataLoaderConfig> = { onEpochEnd: () => {}, imageSize: 4 };

async function captions(loader: DataLoader, epochs = 1): Promise<string[][]> {
  const out: string[][] = [];
  let epoch = -1;
  for await (const b of loader.batches(epochs)) {
    if (b.epoch !== epoch) out.push([]);
    epoch = b.epoch;
    out[out.length - 1]!.push(...b.captions);
  }
  return out;
}

describe('WebDataset', () => {
  it('streams shards from a brace pattern in order, pairing .jpg/.txt and .png/.json members by key', async () => {
    const ds = new WebDataset('shard-{000..002}.tar', { cwd: t.dir });
    expect(ds.shards).toHaveLength(3);
    const loader = new DataLoader(ds, { ...quiet, batchSize: 2, shuffle: false });
    const batches: Batch[] = [];
    for await (const b of loader.batches(1)) batches.push(b);
    expect(batches.flatMap((b) => b.captions)).toEqual(shardCaptions.flat());
    expect(batches[0]!.origins[0]).toEqual({ file: join(t.dir, 'shard-000.tar'), key: 's0-0000' });
    // Pixel values survive decode + resize: shard 1, sample 1 (PNG) is (100, 100, 50) everywhere.
    const b = batches[2]!; // samples 4, 5
    expect(b.captions[0]).toBe('shard 1 sample 1');
    expect(b.images[0]! * 127.5 + 127.5).toBeCloseTo(100, 3);
    expect(b.images[2]! * 127.5 + 127.5).toBeCloseTo(50, 3);
  });

  it('shuffles shard order per epoch from the seed, keeping sample order within a shard', async () => {
    const ds = new WebDataset(join(t.dir, 'shard-*.tar'));
    const a = await captions(new DataLoader(ds, { ...quiet, batchSize: 4, seed: 3 }), 4);
    const again = await captions(new DataLoader(ds, { ...quiet, batchSize: 4, seed: 3 }), 4);
    expect(again).toEqual(a);
    const orders = a.map((ep) => [0, 3, 6].map((i) => ep[i]!.split(' ')[1]).join(''));
    for (const [e, ep] of a.entries()) {
      expect([...ep].sort()).toEqual(shardCaptions.flat().sort());
      const shardOf = orders[e]!.split('').map(Number);
      expect(ep).toEqual(shardOf.flatMap((s) => shardCaptions[s]!));
    }
    expect(new Set(orders).size).toBeGreaterThan(1); // epochs differ
  });

  it('resumes from a cursor mid-shard', async () => {
    const ds = new WebDataset(join(t.dir, 'shard-*.tar'));
    const config = { ...quiet, batchSize: 2, seed: 5 };
    const whole = (await captions(new DataLoader(ds, config), 2)).flat();
    const first = new DataLoader(ds, config);
    const head: string[] = [];
    for await (const b of first.batches()) {
      head.push(...b.captions);
      if (head.length === 4) break;
    }
    const rest = (await captions(DataLoader.fromCursor(ds, config, JSON.parse(JSON.stringify(first.cursor()))), 2)).flat();
    expect([...head, ...rest].slice(0, whole.length)).toEqual(whole);
  });

  it('reports a truncated shard and members without image or caption, and goes on with the other shards', async () => {
    const dir = join(t.dir, 'broken');
    mkdirSync(dir);
    const full = readFileSync(join(t.dir, 'shard-001.tar'));
    const pngHeader = full.indexOf('s1-0001.png'); // header block of the second sample's image
    writeFileSync(join(dir, 'a.tar'), full.subarray(0, pngHeader + 512 + 30)); // first sample, then 30 bytes of s1-0001.png
    const odd = join(t.dir, 'src-odd');
    mkdirSync(odd);
    writeFileSync(join(odd, 'x.txt'), 'caption without image');
    writeFileSync(join(odd, 'y.jpg'), readFileSync(join(t.dir, 'src0', 's0-0000.jpg')));
    gnuTar(join(dir, 'b.tar'), odd, ['x.txt', 'y.jpg']);
    writeFileSync(join(dir, 'c.tar'), readFileSync(join(t.dir, 'shard-002.tar')));
    const reports: EpochReport[] = [];
    const ds = new WebDataset(join(dir, '*.tar'));
    const got = await captions(new DataLoader(ds, { imageSize: 4, batchSize: 8, shuffle: false, onEpochEnd: (r) => reports.push(r) }));
    expect(got[0]).toEqual(['shard 1 sample 0', ...shardCaptions[2]!]);
    const issues = reports[0]!.issues.map((i) => `${i.file.slice(dir.length + 1)}#${i.key}: ${i.reason}`);
    expect(issues, issues.join('\n')).toHaveLength(3);
    expect(issues[0]).toMatch(/^a\.tar#s1-0001: tar .*a\.tar member s1-0001\.png: truncated: header says \d+ bytes, only 30 present$/);
    expect(issues[1]).toMatch(/^b\.tar#x: no image \(\.jpg, \.jpeg or \.png\) among members \.txt$/);
    expect(issues[2]).toMatch(/^b\.tar#y: no caption/);
  });

  it('says clearly when the pattern matches nothing', async () => {
    const ds = new WebDataset(join(t.dir, 'nothing-*.tar'));
    await expect(captions(new DataLoader(ds, quiet))).rejects.toThrow(
      /dataset webdataset .*nothing-\*\.tar has no samples; the shard pattern matched no files/,
    );
  });
});
