import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { jpegBytes, pngBytes, rgb } from '../test/helpers';
import { decodeImage, ImageDecodeError } from './image-decode';
import { encodePng, imageGrid, toBatchTensor } from './image-grid';
import { resizeCenterCrop } from './image-resize';

const to255 = (v: number) => (v + 1) * 127.5;

describe('decodeImage', () => {
  it('decodes PNG losslessly and drops alpha', () => {
    const data = rgb(5, 3, (x, y) => [x * 50, y * 100, 7]);
    const img = decodeImage(pngBytes(5, 3, data));
    expect([img.width, img.height]).toEqual([5, 3]);
    expect([...img.data]).toEqual([...data]);
  });

  it('decodes JPEG (by magic bytes, whatever the name) within compression error', () => {
    const data = rgb(16, 8, () => [200, 40, 90]);
    const img = decodeImage(jpegBytes(16, 8, data), 'x.png');
    expect([img.width, img.height]).toEqual([16, 8]);
    for (let i = 0; i < data.length; i++) expect(Math.abs(img.data[i]! - data[i]!)).toBeLessThanOrEqual(6);
  });

  it('reports truncated PNG and JPEG and non-images with the source name', () => {
    const png = pngBytes(
      8,
      8,
      rgb(8, 8, (x) => [x * 30, 0, 0]),
    );
    expect(() => decodeImage(png.subarray(0, 40), 'a.png')).toThrow(ImageDecodeError);
    expect(() => decodeImage(png.subarray(0, 40), 'a.png')).toThrow(/cannot decode image a\.png: corrupt or truncated PNG/);
    const jpg = jpegBytes(
      16,
      16,
      rgb(16, 16, (x, y) => [x * 16, y * 16, 0]),
    );
    expect(() => decodeImage(jpg.subarray(0, 30), 'b.jpg')).toThrow(/cannot decode image b\.jpg: corrupt or truncated JPEG/);
    expect(() => decodeImage(new TextEncoder().encode('hello'), 'c.jpg')).toThrow(/not a PNG or JPEG \(first bytes: 68 65 6c 6c\)/);
    expect(() => decodeImage(new Uint8Array(0), 'd.jpg')).toThrow(/first bytes: none/);
  });
});

describe('resizeCenterCrop', () => {
  it('shrinks by exact area averaging (4x4 -> 2x2 = 2x2 block means)', () => {
    const v = [
      [0, 10, 20, 30],
      [40, 50, 60, 70],
      [80, 90, 100, 110],
      [120, 130, 140, 150],
    ];
    const out = resizeCenterCrop({ data: rgb(4, 4, (x, y) => [v[y]![x]!, 255, 0]), width: 4, height: 4 }, 2);
    const red = [0, 1, 2, 3].map((i) => to255(out[i * 3]!));
    // (0+10+40+50)/4, (20+30+60+70)/4, (80+90+120+130)/4, (100+110+140+150)/4
    expect(red.map((r) => Math.round(r * 1000) / 1000)).toEqual([25, 45, 105, 125]);
    expect(out[1]).toBeCloseTo(1, 6);
    expect(out[2]).toBeCloseTo(-1, 6);
  });

  it('centre-crops the long side, with fractional coverage (6x4 -> crop x in [1,5) -> 3x3)', () => {
    // Column values 0,30,60,90,120,150; crop [1,5) in 3 cells of 4/3 px each.
    const out = resizeCenterCrop({ data: rgb(6, 4, (x) => [x * 30, 0, 0]), width: 6, height: 4 }, 3);
    const row = [0, 1, 2].map((i) => to255(out[i * 3]!));
    // cell 0 covers [1, 2.333): (30*1 + 60*1/3) / (4/3) = 37.5; cell 1 [2.333, 3.667): (60*2/3 + 90*2/3)/(4/3) = 75; cell 2: 112.5
    expect(row[0]).toBeCloseTo(37.5, 3);
    expect(row[1]).toBeCloseTo(75, 3);
    expect(row[2]).toBeCloseTo(112.5, 3);
    // Every row is the same.
    expect(to255(out[(2 * 3 + 1) * 3]!)).toBeCloseTo(75, 3);
  });

  it('enlarges bilinearly between pixel centres (2 -> 4)', () => {
    const out = resizeCenterCrop({ data: rgb(2, 2, (x) => [x === 0 ? 0 : 200, 0, 0]), width: 2, height: 2 }, 4);
    const row = [0, 1, 2, 3].map((i) => to255(out[i * 3]!));
    // Source centres at -0.25, 0.25, 0.75, 1.25 (clamped): 0, 0.75*0+0.25*200, 0.25*0+0.75*200, 200
    expect(row.map((r) => Math.round(r * 1000) / 1000)).toEqual([0, 50, 150, 200]);
  });

  it('checks its input', () => {
    expect(() => resizeCenterCrop({ data: new Uint8Array(5), width: 2, height: 2 }, 2)).toThrow(/expected 2x2x3 = 12 bytes, got 5/);
    expect(() => resizeCenterCrop({ data: new Uint8Array(12), width: 2, height: 2 }, 0)).toThrow(/positive integer/);
  });
});

describe('encodePng / imageGrid / toBatchTensor', () => {
  it('encodePng writes a PNG that decodes to the quantised image', () => {
    const img = new Float32Array([-1, 0, 1, 0.5, -0.5, 2]);
    const png = PNG.sync.read(Buffer.from(encodePng(img, 1, 2)));
    expect([png.width, png.height]).toEqual([2, 1]);
    expect([...png.data]).toEqual([0, 128, 255, 255, 191, 64, 255, 255]);
    expect(() => encodePng(img, 2, 2)).toThrow(/expected 2x2x3 = 12 values, got 6/);
  });

  it('imageGrid tiles row by row with padding', () => {
    const a = new Float32Array(3).fill(-1);
    const b = new Float32Array(3).fill(0);
    const c = new Float32Array(3).fill(0.5);
    const g = imageGrid([a, b, c], 2, 1, 1, 1, 1);
    expect([g.height, g.width]).toEqual([5, 5]);
    const at = (x: number, y: number) => g.image[(y * g.width + x) * 3];
    expect([at(1, 1), at(3, 1), at(1, 3), at(3, 3), at(0, 0), at(2, 1)]).toEqual([-1, 0, 0.5, 1, 1, 1]);
    expect(() => imageGrid([], 2, 1, 1)).toThrow(/no images/);
  });

  it('toBatchTensor stacks images NHWC without leaking', async () => {
    const a = new Float32Array(2 * 2 * 3).fill(0.25);
    const b = new Float32Array(2 * 2 * 3).fill(-0.5);
    const t = toBatchTensor([a, b], 2, 2);
    expect(t.shape).toEqual([2, 2, 2, 3]);
    const d = await t.data();
    expect(d[0]).toBe(0.25);
    expect(d[12]).toBe(-0.5);
    t.dispose();
    const flat = toBatchTensor(new Float32Array(24), 2, 2);
    expect(flat.shape).toEqual([2, 2, 2, 3]);
    flat.dispose();
    expect(() => toBatchTensor(new Float32Array(10), 2, 2)).toThrow(/not a positive multiple/);
  });
});
