import type { TextTokenizer } from '@ettjs/core';
import { BYTE_TOKENIZER_FILE, ByteTokenizer } from './byte_tokenizer';
import { HFTokenizer, HFTokenizerError } from './hf_tokenizer';

/** The text tokenizers that can be written to and read from a directory. */
export type SavableTextTokenizer = ByteTokenizer | HFTokenizer;

/** Writes `tokenizer` into `dir` in its own form (HF `tokenizer.json` + `tokenizer_config.json`, or `byte_tokenizer.json`). */
export async function saveTextTokenizer(tokenizer: TextTokenizer, dir: string): Promise<void> {
  if (!(tokenizer instanceof ByteTokenizer || tokenizer instanceof HFTokenizer)) {
    throw new HFTokenizerError(
      `saveTextTokenizer: only ByteTokenizer and HFTokenizer can be saved, got ${tokenizer?.constructor?.name ?? typeof tokenizer}; save your tokenizer's files yourself`,
    );
  }
  await tokenizer.saveToDirectory(dir);
}

/** Reads whichever text tokenizer `dir` holds: `tokenizer.json` (HF) first, else `byte_tokenizer.json`. */
export async function loadTextTokenizer(dir: string): Promise<SavableTextTokenizer> {
  const { access } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const has = (name: string) =>
    access(join(dir, name)).then(
      () => true,
      () => false,
    );
  if (await has('tokenizer.json')) return HFTokenizer.fromDirectory(dir);
  if (await has(BYTE_TOKENIZER_FILE)) return ByteTokenizer.fromDirectory(dir);
  throw new HFTokenizerError(
    `loadTextTokenizer: ${dir} holds neither tokenizer.json (an HF tokenizer) nor ${BYTE_TOKENIZER_FILE} (a ByteTokenizer); save one with saveTextTokenizer(tokenizer, dir)`,
  );
}
