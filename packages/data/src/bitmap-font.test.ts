import { describe, expect, it } from 'vitest';
import { BITMAP_FONTS, FONT_CHARSET, glyphRows } from './bitmap-font';

describe('bitmap fonts', () => {
  for (const font of Object.values(BITMAP_FONTS)) {
    it(`${font.name} covers A-Z0-9 with well-formed glyphs`, () => {
      expect(FONT_CHARSET).toHaveLength(36);
      for (const ch of FONT_CHARSET) {
        const rows = glyphRows(font, ch);
        expect(rows, ch).toHaveLength(font.height);
        for (const r of rows) expect(r, ch).toMatch(new RegExp(`^[01]{${font.width}}$`));
        expect(rows.join('').includes('1'), ch).toBe(true);
      }
      expect(Object.keys(font.glyphs).sort()).toEqual([...FONT_CHARSET].sort());
    });

    it(`${font.name} glyphs are pairwise distinct bitmaps (O/0, I/1, S/5, B/8 included)`, () => {
      const seen = new Map<string, string>();
      for (const ch of FONT_CHARSET) {
        const bits = glyphRows(font, ch).join('');
        expect(seen.get(bits), `${ch} duplicates ${seen.get(bits)}`).toBeUndefined();
        seen.set(bits, ch);
      }
    });
  }

  it('names the missing character', () => {
    expect(() => glyphRows(BITMAP_FONTS['3x5'], 'a')).toThrow(/no glyph for "a"/);
  });
});
