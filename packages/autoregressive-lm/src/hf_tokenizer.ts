import type { TextTokenizer } from '@ettjs/core';
import { Tokenizer } from '@huggingface/tokenizers';
import { specialTokenName } from './byte_tokenizer';

type Json = Record<string, unknown>;

interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** A tokenizer directory that cannot be read. */
export class HFTokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HFTokenizerError';
  }
}

/**
 * An HF `tokenizer.json` (BPE, WordPiece, Unigram, ...) read from a local directory and run by
 * `@huggingface/tokenizers` (pure JS). Nothing is downloaded. Special tokens added with
 * `addSpecialTokens` get ids after every existing one, so the loaded vocabulary never shifts.
 */
export class HFTokenizer implements TextTokenizer {
  #json: Json;
  readonly #config: Json;
  #tokenizer: Tokenizer;

  constructor(tokenizerJson: Json, tokenizerConfig: Json = {}) {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !tokenizerJson.model) {
      throw new HFTokenizerError('HFTokenizer: tokenizer.json has no "model" section; is it an HF tokenizers file?');
    }
    this.#json = structuredClone(tokenizerJson);
    this.#config = structuredClone(tokenizerConfig);
    this.#tokenizer = new Tokenizer(this.#json, this.#config);
  }

  /** Reads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json`. */
  static async fromDirectory(dir: string): Promise<HFTokenizer> {
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const read = async (name: string, required: boolean): Promise<Json | undefined> => {
      let text: string;
      try {
        text = await readFile(join(dir, name), 'utf8');
      } catch {
        if (required)
          throw new HFTokenizerError(
            `HFTokenizer: ${join(dir, name)} not found; save the tokenizer with HF save_pretrained (fast tokenizer) first`,
          );
        return undefined;
      }
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new HFTokenizerError(`HFTokenizer: ${join(dir, name)} is not valid JSON (${(e as Error).message})`);
      }
    };
    const json = (await read('tokenizer.json', true)) as Json;
    return new HFTokenizer(json, (await read('tokenizer_config.json', false)) ?? {});
  }

  /**
   * Writes `dir/tokenizer.json` (with the added special tokens) and `dir/tokenizer_config.json`,
   * the files `fromDirectory` and HF `AutoTokenizer.from_pretrained` read.
   */
  async saveToDirectory(dir: string): Promise<void> {
    const { mkdir, writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(this.#json));
    await writeFile(join(dir, 'tokenizer_config.json'), `${JSON.stringify(this.#config, null, 2)}\n`);
  }

  #added(): AddedTokenJson[] {
    return (this.#json.added_tokens as AddedTokenJson[] | undefined) ?? [];
  }

  /** One more than the largest id of the model vocabulary or the added tokens. */
  get vocabSize(): number {
    let max = -1;
    for (const id of this.#tokenizer.get_vocab(true).values()) if (id > max) max = id;
    return max + 1;
  }

  /**
   * Special tokens by name: `bos`, `eos`, `pad`, `unk` from tokenizer_config.json, and every added
   * special token under its content without brackets (`<boi>` → `boi`).
   */
  get specialTokens(): Readonly<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const t of this.#added()) if (t.special) out[specialTokenName(t.content)] = t.id;
    for (const role of ['bos', 'eos', 'pad', 'unk']) {
      const raw = this.#config[`${role}_token`];
      const content = typeof raw === 'string' ? raw : raw && typeof raw === 'object' ? (raw as Json).content : undefined;
      const id = typeof content === 'string' ? this.#tokenizer.token_to_id(content) : undefined;
      if (id !== undefined) out[role] = id;
    }
    return out;
  }

  /**
   * Adds special tokens (e.g. `['<boi>', '<eoi>']`) with ids after the current vocabulary; tokens
   * already present keep their id. Returns the ids. Grow the LM to match with
   * `lm.resizeTokenEmbeddings(tokenizer.vocabSize)`.
   */
  addSpecialTokens(tokens: readonly string[]): number[] {
    const added = [...this.#added()];
    const ids = tokens.map((content) => {
      if (typeof content !== 'string' || content.length === 0)
        throw new HFTokenizerError(`HFTokenizer.addSpecialTokens: expected non-empty strings, got ${JSON.stringify(content)}`);
      const existing = this.#tokenizer.token_to_id(content) ?? added.find((t) => t.content === content)?.id;
      if (existing !== undefined) return existing;
      const id = Math.max(this.vocabSize, ...added.map((t) => t.id + 1));
      added.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
      return id;
    });
    this.#json = { ...this.#json, added_tokens: added };
    this.#tokenizer = new Tokenizer(this.#json, this.#config);
    return ids;
  }

  tokenToId(token: string): number | undefined {
    return this.#tokenizer.token_to_id(token);
  }

  /** Token ids of `text`. `addSpecialTokens` runs the post-processor (e.g. LLaMA's BOS). Defaults to false: the ETT sequence places BOS itself. */
  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new HFTokenizerError(`HFTokenizer.encode: expected a string, got ${typeof text}`);
    return this.#tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
  }

  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const v = this.vocabSize;
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0 || id >= v) throw new HFTokenizerError(`HFTokenizer.decode: id ${id} is outside [0, ${v})`);
    return this.#tokenizer.decode([...ids], { skip_special_tokens: options.skipSpecialTokens ?? false });
  }
}
