import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BITMAP_FONTS, FONT_CHARSET, type FontName } from './bitmap-font';
import { parseCaption, SHAPE_COLOURS, type SplitName, SyntheticConfigError, type SyntheticSample, SyntheticTextImages } from './synthetic';

const px = (s: SyntheticSample, x: number, y: number) => {
  const o = (y * s.width + x) * 3;
  return [s.image[o]!, s.image[o + 1]!, s.image[o + 2]!].map((v) => Math.round((v + 1) * 127.5));
};
const same = (a: number[], b: readonly number[]) => a.every((v, i) => v === b[i]);

/**
 * Reads the string back from the white pixels using only the font table (independent of the
 * renderer): tries each alignment and length, keeping the one where every cell is exactly one
 * glyph and the glyphs account for every white pixel.
 */
function readText(s: SyntheticSample, fontName: FontName, k: number): string {
  const font = BITMAP_FONTS[fontName];
  const white = (x: number, y: number) => x >= 0 && x < s.width && y < s.height && same(px(s, x, y), [255, 255, 255]);
  let x0 = s.width;
  let y0 = s.height;
  let total = 0;
  for (let y = 0; y < s.height; y++)
    for (let x = 0; x < s.width; x++)
      if (white(x, y)) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        total++;
      }
  const cell = (font.width + 1) * k;
  for (let start = x0 - (font.width - 1) * k; start <= x0; start += k) {
    for (let n = 1; n <= 4; n++) {
      let text = '';
      let ink = 0;
      for (let c = 0; c < n; c++) {
        const hits = [...FONT_CHARSET].filter((ch) =>
          font.glyphs[ch]!.every((row, gy) => [...row].every((bit, gx) => (bit === '1') === white(start + c * cell + gx * k, y0 + gy * k))),
        );
        if (hits.length !== 1) break;
        text += hits[0];
        ink += font.glyphs[hits[0]!]!.join('').split('1').length - 1;
      }
      if (text.length === n && ink * k * k === total) return text;
    }
  }
  return '?';
}

describe('SyntheticTextImages', () => {
  const ds = new SyntheticTextImages();

  it('is deterministic in (seed, split, index) and varies with each', () => {
    const a = ds.sample('train', 7);
    const b = new SyntheticTextImages().sample('train', 7);
    expect(a.caption).toBe(b.caption);
    expect(Buffer.from(a.image.buffer).equals(Buffer.from(b.image.buffer))).toBe(true);
    const keys = new Set([
      a.key,
      ds.sample('train', 8).key,
      new SyntheticTextImages({ seed: 1 }).sample('train', 7).key,
      ds.sample('test', 7).key,
    ]);
    expect(keys.size).toBe(4);
  });

  it('default sample: 32x32 in [-1, 1], one shape, two characters, caption from the grammar', () => {
    for (let i = 0; i < 50; i++) {
      const s = ds.sample('train', i);
      expect(s.height).toBe(32);
      expect(s.image.length).toBe(32 * 32 * 3);
      expect(Math.min(...s.image)).toBeGreaterThanOrEqual(-1);
      expect(Math.max(...s.image)).toBeLessThanOrEqual(1);
      expect(s.fields.text).toMatch(/^[A-Z0-9]{2}$/);
      expect(s.fields.shapes).toHaveLength(1);
      expect(s.caption).toMatch(
        /^a (red|green|blue|yellow|purple|cyan) (circle|square|triangle|cross) (on the left|on the right|at the top|at the bottom|in the center)\. text: [A-Z0-9]{2}\.$/,
      );
      expect(s.caption).toBe(
        `a ${s.fields.colour} ${s.fields.shape} ${{ left: 'on the left', right: 'on the right', top: 'at the top', bottom: 'at the bottom', center: 'in the center' }[s.fields.position]}. text: ${s.fields.text}.`,
      );
    }
  });

  it('draws the text legibly: reading the pixels with the font table recovers fields.text', () => {
    for (const [font, k, size] of [
      ['3x5', 2, 32],
      ['5x7', 2, 48],
      ['3x5', 3, 64],
    ] as const) {
      const gen = new SyntheticTextImages({ font, glyphScale: k, imageSize: size, textLength: [2, 3] });
      for (let i = 0; i < 20; i++) {
        const s = gen.sample('validation', i);
        expect(readText(s, font, k), `${font} x${k} ${s.caption}`).toBe(s.fields.text);
      }
    }
  });

  it('draws the shape with its colour, area and coarse position (hand-computed areas for size 8)', () => {
    // Pixel-centre fill of an 8-px shape: square 8*8; circle r=4: 13 per quadrant; triangle rows
    // 0,2,2,4,4,6,6,8; cross: two 8x2 arms sharing 2x2.
    const area = { square: 64, circle: 52, triangle: 32, cross: 28 };
    const seen = new Set<string>();
    for (let i = 0; i < 120; i++) {
      const s = ds.sample('train', i);
      const colour = SHAPE_COLOURS[s.fields.colour];
      let n = 0;
      let sx = 0;
      let sy = 0;
      let top = 32;
      let bottom = 0;
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          if (same(px(s, x, y), colour)) {
            n++;
            sx += x + 0.5;
            sy += y + 0.5;
            top = Math.min(top, y);
            bottom = Math.max(bottom, y + 1);
          }
      const by = (top + bottom) / 2;
      expect(n, s.caption).toBe(area[s.fields.shape]);
      const [cx, cy] = [sx / n, sy / n];
      const where = s.fields.position;
      if (where === 'left') expect(cx).toBeLessThan(32 / 3);
      if (where === 'right') expect(cx).toBeGreaterThan((2 * 32) / 3);
      if (where === 'top' || where === 'bottom' || where === 'center') expect(Math.abs(cx - 16)).toBeLessThanOrEqual(2);
      // Anchors for a 18-px shape area: top 6, center 9, bottom 12, each +-1 jitter.
      if (where === 'top') expect(by).toBeLessThanOrEqual(7.5);
      if (where === 'center') expect(Math.abs(by - 9)).toBeLessThanOrEqual(1.5);
      if (where === 'bottom') expect(by).toBeGreaterThanOrEqual(10.5);
      expect(cy).toBeLessThan(18); // above the text band
      seen.add(s.fields.shape).add(where);
    }
    expect(seen.size).toBe(9); // every shape and position occurred
  });

  it('places two shapes without overlap and captions both', () => {
    const gen = new SyntheticTextImages({ shapesPerImage: [2, 2], positionJitter: 0 });
    for (let i = 0; i < 30; i++) {
      const s = gen.sample('train', i);
      expect(s.fields.shapes).toHaveLength(2);
      const [a, b] = s.fields.shapes as [(typeof s.fields.shapes)[0], (typeof s.fields.shapes)[0]];
      expect(a.position).not.toBe(b.position);
      expect(s.caption).toContain(' and a ');
      const parsed = parseCaption(s.caption);
      expect(parsed.shapes).toEqual(s.fields.shapes);
      if (a.colour !== b.colour) {
        const count = (c: readonly number[]) => {
          let n = 0;
          for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) if (same(px(s, x, y), c)) n++;
          return n;
        };
        const area = { square: 64, circle: 52, triangle: 32, cross: 28 };
        expect(count(SHAPE_COLOURS[a.colour])).toBe(area[a.shape]);
        expect(count(SHAPE_COLOURS[b.colour])).toBe(area[b.shape]);
      }
    }
  });

  it('splits never share a sample: keys and pixels are disjoint over 4000 samples, across seeds too', () => {
    const hashes: Record<string, Set<string>> = {};
    const keys: Record<string, Set<string>> = {};
    const plan: [SplitName, number, number][] = [
      ['train', 2000, 0],
      ['validation', 500, 0],
      ['test', 500, 0],
      ['test', 500, 1],
      ['train', 500, 1],
    ];
    for (const [split, n, seed] of plan) {
      const gen = seed === 0 ? ds : new SyntheticTextImages({ seed });
      for (let i = 0; i < n; i++) {
        const s = gen.sample(split, i);
        hashes[split] ??= new Set();
        keys[split] ??= new Set();
        hashes[split].add(createHash('sha1').update(s.image).update(s.caption).digest('hex'));
        keys[split].add(s.key);
        expect(gen.splitOf(s.key)).toBe(split);
      }
    }
    for (const [a, b] of [
      ['train', 'validation'],
      ['train', 'test'],
      ['validation', 'test'],
    ] as const) {
      expect([...hashes[a]!].filter((h) => hashes[b]!.has(h))).toEqual([]);
      expect([...keys[a]!].filter((h) => keys[b]!.has(h))).toEqual([]);
    }
    expect(hashes.train!.size).toBeGreaterThan(2400); // the sample space is large: few repeats
  });

  it('rejects configs it cannot render, saying what to change', () => {
    expect(() => new SyntheticTextImages({ textLength: [4, 4], glyphScale: 3 })).toThrow(SyntheticConfigError);
    expect(() => new SyntheticTextImages({ textLength: [4, 4], glyphScale: 3 })).toThrow(/need 45 px but the image is 32 px wide/);
    expect(() => new SyntheticTextImages({ colours: ['mauve' as 'red'] })).toThrow(/unknown colour "mauve"/);
    expect(() => new SyntheticTextImages({ charset: 'ab' })).toThrow(/not in font/);
    expect(() => new SyntheticTextImages({ splitFractions: { train: 0.5, validation: 0.1, test: 0.1 } })).toThrow(/sum to 1/);
    expect(() => new SyntheticTextImages({ imageSize: 8 })).toThrow(/imageSize/);
    expect(() => ds.sample('train', -1)).toThrow(/non-negative/);
    expect(() => ds.sample('dev' as SplitName, 0)).toThrow(/split must be/);
  });
});

describe('parseCaption', () => {
  it('recovers every field of generated captions', () => {
    const gen = new SyntheticTextImages({ shapesPerImage: [1, 2], textLength: [2, 4], imageSize: 48 });
    for (let i = 0; i < 200; i++) {
      const s = gen.sample('test', i);
      const p = parseCaption(s.caption);
      expect(p.shape).toBe(s.fields.shape);
      expect(p.colour).toBe(s.fields.colour);
      expect(p.position).toBe(s.fields.position);
      expect(p.text).toBe(s.fields.text);
      expect(p.shapes).toEqual(s.fields.shapes);
    }
  });

  it('scores partial or garbled captions field by field, null where absent', () => {
    expect(parseCaption('a red squar on the left. text: k7.')).toEqual({
      shape: null,
      colour: 'red',
      position: 'left',
      text: 'K7',
      shapes: [{ shape: null, colour: 'red', position: 'left' }],
    });
    expect(parseCaption('a blue circle in the middle')).toMatchObject({ shape: 'circle', colour: 'blue', position: 'center', text: null });
    expect(parseCaption('xq!! text:')).toEqual({ shape: null, colour: null, position: null, text: null, shapes: [] });
    expect(parseCaption('')).toMatchObject({ shape: null, text: null });
  });
});
