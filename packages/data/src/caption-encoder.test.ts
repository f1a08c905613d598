import { describe, expect, it } from 'vitest';
import { TestByteTokenizer } from '../test/helpers';
import { CaptionEncoder, CaptionError, IGNORE_INDEX } from './caption-encoder';

const tok = new TestByteTokenizer(); // bytes, pad 256, bos 257, eos 258
const I = IGNORE_INDEX;

describe('CaptionEncoder', () => {
  it('builds ids, attention mask and labels (ignore on bos and padding), padded to maxLength', () => {
    const enc = new CaptionEncoder(tok, { maxLength: 6 });
    const out = enc.encode(['ab', 'c']);
    expect([out.batch, out.length]).toEqual([2, 6]);
    expect(out.captionIds).toEqual([[97, 98], [99]]);
    expect([...out.inputIds]).toEqual([257, 97, 98, 258, 256, 256, 257, 99, 258, 256, 256, 256]);
    expect([...out.attentionMask]).toEqual([1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0]);
    expect([...out.labels]).toEqual([I, 97, 98, 258, I, I, I, 99, 258, I, I, I]);
  });

  it("pads to the batch's longest with padding 'longest', and honours addBos/addEos", () => {
    const enc = new CaptionEncoder(tok, { maxLength: 16, padding: 'longest', addBos: false });
    const out = enc.encode(['abc', 'a']);
    expect(out.length).toBe(4);
    expect([...out.inputIds]).toEqual([97, 98, 99, 258, 97, 258, 256, 256]);
    expect([...out.labels]).toEqual([97, 98, 99, 258, 97, 258, I, I]);
  });

  it('refuses empty and over-long captions with the lengths involved', () => {
    const enc = new CaptionEncoder(tok, { maxLength: 5 });
    expect(enc.tokenize('abc')).toEqual([97, 98, 99]); // 3 + bos + eos = 5 fits exactly
    expect(() => enc.tokenize('abcd')).toThrow(CaptionError);
    expect(() => enc.tokenize('abcd')).toThrow(/needs 6 tokens \(with specials\) but maxLength is 5/);
    expect(() => enc.tokenize('  ')).toThrow(/empty caption/);
    expect(() => enc.pad([])).toThrow(/empty batch/);
  });

  it('checks the tokenizer has the specials it needs', () => {
    const noPad = { ...tok, vocabSize: 258, specialTokens: { bos: 257, eos: 258 }, encode: tok.encode, decode: tok.decode };
    expect(() => new CaptionEncoder(noPad)).toThrow(/no 'pad' special token \(it has: bos, eos\)/);
    expect(() => new CaptionEncoder(tok, { maxLength: 2 })).toThrow(/maxLength must be an integer above 2/);
  });
});
