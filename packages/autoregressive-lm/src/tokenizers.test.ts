import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ByteTokenizer } from './byte_tokenizer';
import { HFTokenizer, HFTokenizerError } from './hf_tokenizer';

const fixture = fileURLToPath(new URL('../test/fixtures/bpe-tokenizer', import.meta.url));

describe('ByteTokenizer', () => {
  it('encodes UTF-8 bytes, places specials after the bytes and round-trips', () => {
    const tok = new ByteTokenizer();
    expect(tok.vocabSize).toBe(261);
    expect(tok.specialTokens).toEqual({ pad: 256, bos: 257, eos: 258, boi: 259, eoi: 260 });
    expect(tok.encode('hé')).toEqual([104, 0xc3, 0xa9]);
    expect(tok.encode('<bos>a<boi><eoi>')).toEqual([257, 97, 259, 260]);
    const text = 'red circle . text: K7 ✓ <eos>';
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.decode(tok.encode(text), { skipSpecialTokens: true })).toBe('red circle . text: K7 ✓ ');
  });

  it('adds special tokens without shifting ids', () => {
    const tok = new ByteTokenizer({ specialTokens: ['<pad>'] });
    expect(tok.addSpecialTokens(['<boi>', '<eoi>', '<pad>'])).toEqual([257, 258, 256]);
    expect(tok.vocabSize).toBe(259);
    expect(tok.encode('<eoi>x')).toEqual([258, 120]);
    expect(() => tok.decode([259])).toThrow(/outside \[0, 259\)/);
  });
});

describe('HFTokenizer', () => {
  it('loads a local tokenizer.json (BPE, byte-level) and round-trips', async () => {
    const tok = await HFTokenizer.fromDirectory(fixture);
    expect(tok.vocabSize).toBe(58);
    // "the" is a merged token of the hand-written vocabulary (id 45), "Ġ" is 29
    expect(tok.encode('the cat').slice(0, 2)).toEqual([45, 29]);
    expect(tok.decode(tok.encode('the cat sat on the mat.'))).toBe('the cat sat on the mat.');
    expect(tok.specialTokens).toMatchObject({ bos: 1, eos: 2, unk: 0 });
  });

  it('appends special tokens after the vocabulary and encodes them as one id', async () => {
    const tok = await HFTokenizer.fromDirectory(fixture);
    const before = tok.encode('the cat');
    expect(tok.addSpecialTokens(['<boi>', '<eoi>'])).toEqual([58, 59]);
    expect(tok.addSpecialTokens(['<boi>', '</s>'])).toEqual([58, 2]);
    expect(tok.vocabSize).toBe(60);
    expect(tok.encode('the cat')).toEqual(before);
    expect(tok.encode('<boi>the<eoi>')).toEqual([58, 45, 59]);
    expect(tok.specialTokens).toMatchObject({ boi: 58, eoi: 59, eos: 2 });
    expect(tok.decode([58, 45, 59], { skipSpecialTokens: true })).toBe('the');
  });

  it('reports a missing or malformed tokenizer directory', async () => {
    await expect(HFTokenizer.fromDirectory('/nonexistent-dir')).rejects.toThrow(HFTokenizerError);
    expect(() => new HFTokenizer({ version: '1.0' })).toThrow(/no "model" section/);
  });
});
