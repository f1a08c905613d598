import type { TextTokenizer } from '@ettjs/core';

/** Default special tokens of `ByteTokenizer`, ids 256.. in this order. */
export const DEFAULT_BYTE_SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>', '<boi>', '<eoi>'] as const;

/** The file `ByteTokenizer.saveToDirectory` writes: `{"tokenizer_class": "ByteTokenizer", "special_tokens": [...]}`. */
export const BYTE_TOKENIZER_FILE = 'byte_tokenizer.json';

/** Name under which a special token string is listed in `specialTokens` (`<boi>` → `boi`, `<|im_end|>` → `im_end`). */
export function specialTokenName(token: string): string {
  return token.replace(/^<\|?/, '').replace(/\|?>$/, '');
}

/**
 * The embedded default text tokenizer: ids 0–255 are the UTF-8 bytes, special tokens follow
 * (`<pad>` 256, `<bos>` 257, `<eos>` 258, `<boi>` 259, `<eoi>` 260 by default). Needs no files, so
 * every example and test runs offline. Special token strings inside the text encode to their id.
 */
export class ByteTokenizer implements TextTokenizer {
  readonly #specials: string[];

  constructor(options: { specialTokens?: readonly string[] } = {}) {
    this.#specials = [];
    this.addSpecialTokens(options.specialTokens ?? DEFAULT_BYTE_SPECIAL_TOKENS);
  }

  get vocabSize(): number {
    return 256 + this.#specials.length;
  }

  /** Writes `dir/byte_tokenizer.json` (the special token strings in id order); `fromDirectory` reads it back. */
  async saveToDirectory(dir: string): Promise<void> {
    const { mkdir, writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    await mkdir(dir, { recursive: true });
    const json = { tokenizer_class: 'ByteTokenizer', special_tokens: [...this.#specials] };
    await writeFile(join(dir, BYTE_TOKENIZER_FILE), `${JSON.stringify(json, null, 2)}\n`);
  }

  /** Reads a tokenizer written by `saveToDirectory`. */
  static async fromDirectory(dir: string): Promise<ByteTokenizer> {
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const file = join(dir, BYTE_TOKENIZER_FILE);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, 'utf8'));
    } catch (e) {
      throw new Error(
        `ByteTokenizer.fromDirectory: cannot read ${file} (${(e as Error).message}); write it with ByteTokenizer.saveToDirectory`,
      );
    }
    const { tokenizer_class: cls, special_tokens: specials } = (json ?? {}) as Record<string, unknown>;
    if (cls !== 'ByteTokenizer' || !Array.isArray(specials) || specials.some((t) => typeof t !== 'string')) {
      throw new Error(
        `ByteTokenizer.fromDirectory: ${file} must hold {"tokenizer_class": "ByteTokenizer", "special_tokens": [strings]}, got ${JSON.stringify(json).slice(0, 200)}`,
      );
    }
    return new ByteTokenizer({ specialTokens: specials as string[] });
  }

  get specialTokens(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.#specials.map((s, i) => [specialTokenName(s), 256 + i]));
  }

  /** Appends special tokens after the existing ids (known ones are skipped); returns their ids. */
  addSpecialTokens(tokens: readonly string[]): number[] {
    return tokens.map((tok) => {
      if (typeof tok !== 'string' || tok.length === 0)
        throw new Error(`ByteTokenizer: a special token must be a non-empty string, got ${JSON.stringify(tok)}`);
      const known = this.#specials.indexOf(tok);
      if (known >= 0) return 256 + known;
      if (this.#specials.some((s) => specialTokenName(s) === specialTokenName(tok))) {
        throw new Error(`ByteTokenizer: special token ${tok} has the same name "${specialTokenName(tok)}" as an existing one`);
      }
      this.#specials.push(tok);
      return 256 + this.#specials.length - 1;
    });
  }

  /** Id of a special token string (`'<boi>'`), or undefined. */
  tokenToId(token: string): number | undefined {
    const i = this.#specials.indexOf(token);
    return i >= 0 ? 256 + i : undefined;
  }

  encode(text: string): number[] {
    if (typeof text !== 'string') throw new Error(`ByteTokenizer.encode: expected a string, got ${typeof text}`);
    const out: number[] = [];
    const utf8 = new TextEncoder();
    // Longest special first, so one that contains another wins.
    const specials = [...this.#specials].map((s, i) => ({ s, id: 256 + i })).sort((a, b) => b.s.length - a.s.length);
    let start = 0;
    let i = 0;
    while (i < text.length) {
      const hit = specials.find(({ s }) => text.startsWith(s, i));
      if (!hit) {
        i++;
        continue;
      }
      out.push(...utf8.encode(text.slice(start, i)), hit.id);
      i += hit.s.length;
      start = i;
    }
    out.push(...utf8.encode(text.slice(start)));
    return out;
  }

  /** Bytes decode as UTF-8 (invalid sequences become U+FFFD); specials as their strings unless skipped. */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    let text = '';
    let bytes: number[] = [];
    const flush = () => {
      text += new TextDecoder('utf-8').decode(new Uint8Array(bytes));
      bytes = [];
    };
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize)
        throw new Error(`ByteTokenizer.decode: id ${id} is outside [0, ${this.vocabSize})`);
      if (id < 256) bytes.push(id);
      else {
        flush();
        if (!options.skipSpecialTokens) text += this.#specials[id - 256];
      }
    }
    flush();
    return text;
  }
}
