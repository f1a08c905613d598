import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ByteTokenizer } from './byte_tokenizer';
import { HFTokenizer, HFTokenizerError } from './hf_tokenizer';
import { loadTextTokenizer, saveTextTokenizer } from './text_tokenizer';

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

describe('saveTextTokenizer / loadTextTokenizer', () => {
  const tmp = () => mkdtempSync(join(tmpdir(), 'ett-text-tok-'));

  it('writes a ByteTokenizer as byte_tokenizer.json and reads back the same ids, custom specials included', async () => {
    const tok = new ByteTokenizer();
    tok.addSpecialTokens(['<|im_end|>']);
    const dir = tmp();
    await saveTextTokenizer(tok, dir);
    expect(JSON.parse(readFileSync(join(dir, 'byte_tokenizer.json'), 'utf8'))).toEqual({
      tokenizer_class: 'ByteTokenizer',
      special_tokens: ['<pad>', '<bos>', '<eos>', '<boi>', '<eoi>', '<|im_end|>'],
    });
    const back = await loadTextTokenizer(dir);
    expect(back).toBeInstanceOf(ByteTokenizer);
    expect(back.specialTokens).toEqual({ pad: 256, bos: 257, eos: 258, boi: 259, eoi: 260, im_end: 261 });
    expect(back.encode('a<|im_end|>')).toEqual([97, 261]);
  });

  it('writes an HFTokenizer as tokenizer.json + tokenizer_config.json, added specials included', async () => {
    const tok = await HFTokenizer.fromDirectory(fixture);
    tok.addSpecialTokens(['<boi>', '<eoi>']);
    const dir = tmp();
    await saveTextTokenizer(tok, dir);
    const back = await loadTextTokenizer(dir);
    expect(back).toBeInstanceOf(HFTokenizer);
    expect(back.vocabSize).toBe(60);
    expect(back.specialTokens).toMatchObject({ boi: 58, eoi: 59, bos: 1, eos: 2 });
    expect(back.encode('<boi>the cat<eoi>')).toEqual(tok.encode('<boi>the cat<eoi>'));
  });

  it('names the files it looked for when a directory holds no tokenizer, and rejects tokenizers it cannot save', async () => {
    const dir = tmp();
    await expect(loadTextTokenizer(dir)).rejects.toThrow(/neither tokenizer.json .* nor byte_tokenizer.json/);
    writeFileSync(join(dir, 'byte_tokenizer.json'), '{"tokenizer_class": "Other"}');
    await expect(loadTextTokenizer(dir)).rejects.toThrow(/byte_tokenizer.json must hold \{"tokenizer_class": "ByteTokenizer"/);
    const custom = { vocabSize: 3, specialTokens: {}, encode: () => [], decode: () => '' };
    await expect(saveTextTokenizer(custom, dir)).rejects.toThrow(/only ByteTokenizer and HFTokenizer can be saved, got Object/);
  });
});
