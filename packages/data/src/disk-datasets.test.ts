import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jpegBytes, pngBytes, rgb, TestByteTokenizer, tempDir } from '../test/helpers';
import { CaptionEncoder } from './caption-encoder';
import { type Batch, DataLoader, type EpochReport } from './data-loader';
import { EmptyDatasetError, SampleError } from './dataset';
import { FolderDataset } from './folder-dataset';
import { JsonlDataset } from './jsonl-dataset';

const t = tempDir();
afterAll(t.cleanup);

const red = rgb(8, 8, () => [255, 0, 0]);
const png = pngBytes(8, 8, red);
// 12x6 JPEG: left third blue, centre green, right third blue -> centre crop is all green.
const wide = jpegBytes(
  12,
  6,
  rgb(12, 6, (x) => (x >= 3 && x < 9 ? [0, 255, 0] : [0, 0, 255])),
);
mkdirSync(join(t.dir, 'img'));
writeFileSync(join(t.dir, 'img/red.png'), png);
writeFileSync(join(t.dir, 'img/wide.jpg'), wide);
writeFileSync(join(t.dir, 'img/cut.png'), png.subarray(0, 50));
writeFileSync(join(t.dir, 'img/cut.jpg'), wide.subarray(0, 40));

const lines = [
  { image: 'img/red.png', caption: 'a red square' }, // 1
  { image: 'img/wide.jpg', caption: 'green in the middle' }, // 2
  { image: 'img/missing.png', caption: 'gone' }, // 3
  { image: 'img/cut.png', caption: 'corrupt png' }, // 4
  '{"image": "img/red.png", "caption": ', // 5: unparsable
  '', // 6: blank, ignored
  { image: 'img/cut.jpg', caption: 'corrupt jpeg' }, // 7
  { image: 'img/red.png', caption: '   ' }, // 8: empty caption
  { image: 'img/red.png', caption: 'x'.repeat(40) }, // 9: too long for maxLength 32
  { picture: 'img/red.png' }, // 10: wrong keys
];
const jsonl = join(t.dir, 'captions.jsonl');
writeFileSync(jsonl, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n'));

const encoder = new CaptionEncoder(new TestByteTokenizer(), { maxLength: 32 });

async function all(loader: DataLoader, epochs = 1): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.batches(epochs)) out.push(b);
  return out;
}

describe('JsonlDataset', () => {
  it('decodes, centre-crops and normalises the good lines, and reports each bad one by file:line with a reason', async () => {
    const ds = await JsonlDataset.open(jsonl);
    expect(ds.length).toBe(9);
    const reports: EpochReport[] = [];
    const loader = new DataLoader(ds, {
      imageSize: 4,
      batchSize: 4,
      shuffle: false,
      captionEncoder: encoder,
      onEpochEnd: (r) => reports.push(r),
    });
    const batches = await all(loader);
    expect(batches).toHaveLength(1);
    const b = batches[0]!;
    expect(b.captions).toEqual(['a red square', 'green in the middle']);
    expect(b.origins.map((o) => o.line)).toEqual([1, 2]);
    const px = (i: number, x: number, y: number) => [0, 1, 2].map((c) => b.images[i * 48 + (y * 4 + x) * 3 + c]!);
    expect(px(0, 2, 2)).toEqual([1, -1, -1]);
    const g = px(1, 0, 0); // JPEG: green within compression error, no blue from the cropped sides
    expect(g[1]).toBeGreaterThan(0.9);
    expect(g[2]).toBeLessThan(-0.8);
    const r = reports[0]!;
    expect(r.samples).toBe(2);
    expect(r.skipped).toBe(7);
    const byLine = Object.fromEntries(r.issues.map((i) => [i.line, i.reason]));
    expect(r.issues.every((i) => i.file === jsonl)).toBe(true);
    expect(byLine[3]).toMatch(/missing image file .*img\/missing\.png/);
    expect(byLine[4]).toMatch(/corrupt or truncated PNG/);
    expect(byLine[5]).toMatch(/unparsable JSON/);
    expect(byLine[7]).toMatch(/corrupt or truncated JPEG/);
    expect(byLine[8]).toBe('empty caption');
    expect(byLine[9]).toMatch(/caption needs 42 tokens \(with specials\) but maxLength is 32/);
    expect(byLine[10]).toMatch(/expected \{"image": "<path>", "caption": "<text>"\}, got keys \[picture\]/);
  });

  it("with onBadSample 'error' stops at the first bad sample, naming file and line", async () => {
    const ds = await JsonlDataset.open(jsonl);
    const loader = new DataLoader(ds, { imageSize: 4, batchSize: 1, shuffle: false, onBadSample: 'error' });
    const seen: string[] = [];
    const run = async () => {
      for await (const b of loader.batches(1)) seen.push(b.captions[0]!);
    };
    await expect(run()).rejects.toThrow(SampleError);
    expect(seen).toEqual(['a red square', 'green in the middle']);
    await expect(
      (async () => {
        for await (const _ of DataLoader.fromCursor(
          ds,
          { imageSize: 4, batchSize: 1, shuffle: false, onBadSample: 'error' },
          loader.cursor(),
        ).batches(1)) {
        }
      })(),
    ).rejects.toThrow(`${jsonl}:3: missing image file`);
  });

  it('warns by default at the end of an epoch with a count', async () => {
    const ds = await JsonlDataset.open(jsonl);
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (m: string) => warnings.push(m);
    try {
      await all(new DataLoader(ds, { imageSize: 4, batchSize: 8 }));
    } finally {
      console.warn = warn;
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/epoch 0 skipped 6 bad sample\(s\) of 9/);
    expect(warnings[0]).toContain(`${jsonl}:`);
  });

  it('says clearly when a dataset is empty or unusable', async () => {
    const empty = join(t.dir, 'empty.jsonl');
    writeFileSync(empty, '\n\n');
    const loader = new DataLoader(await JsonlDataset.open(empty), { imageSize: 4 });
    await expect(all(loader)).rejects.toThrow(EmptyDatasetError);
    await expect(all(loader)).rejects.toThrow(`dataset jsonl ${empty} has no samples`);
    const bad = join(t.dir, 'bad.jsonl');
    writeFileSync(bad, 'nope\n');
    await expect(all(new DataLoader(await JsonlDataset.open(bad), { imageSize: 4, onEpochEnd: () => {} }))).rejects.toThrow(
      /has no usable samples in epoch 0: all 1 were skipped \(first: .*bad\.jsonl:1: unparsable JSON/,
    );
    await expect(JsonlDataset.open(join(t.dir, 'nowhere.jsonl'))).rejects.toThrow(/cannot read JSONL dataset/);
  });
});

describe('FolderDataset', () => {
  it('pairs images with sidecar .txt captions, recursively, and reports images without one', async () => {
    const dir = join(t.dir, 'folder');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    writeFileSync(join(dir, 'a.png'), png);
    writeFileSync(join(dir, 'a.txt'), 'red thing\n');
    writeFileSync(join(dir, 'sub/b.jpg'), wide);
    writeFileSync(join(dir, 'sub/b.txt'), 'green thing');
    writeFileSync(join(dir, 'c.png'), png);
    writeFileSync(join(dir, 'notes.md'), 'ignored');
    const ds = await FolderDataset.open(dir);
    expect(ds.length).toBe(3);
    const reports: EpochReport[] = [];
    const batches = await all(new DataLoader(ds, { imageSize: 8, batchSize: 4, shuffle: false, onEpochEnd: (r) => reports.push(r) }));
    expect(batches[0]!.captions).toEqual(['red thing', 'green thing']);
    expect(reports[0]!.issues).toEqual([{ file: join(dir, 'c.png'), reason: `missing caption file ${join(dir, 'c.txt')}` }]);
    await expect(FolderDataset.open(join(dir, 'sub', 'x'))).rejects.toThrow(/cannot read image folder/);
    const none = join(t.dir, 'no-images');
    mkdirSync(none);
    await expect(all(new DataLoader(await FolderDataset.open(none), { imageSize: 8 }))).rejects.toThrow(
      /dataset folder .*no-images has no samples/,
    );
  });
});
