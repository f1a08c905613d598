import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

describe('README', () => {
  it('runs its ts example as written', async () => {
    expect(blocks).toHaveLength(1);
    const file = new URL('./.readme-block.ts', import.meta.url);
    await writeFile(file, `${blocks[0]}\nexport {};\n`);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await import(/* @vite-ignore */ `${file.href}?t=${Date.now()}`);
      const lines = log.mock.calls.map((c) => c.map(String).join(' '));
      // 16 px at ×4 → 4×4 = 16 visual tokens; T = 2 + 16 + (<eoi> + 12 + [EOS]); V = 261 byte-level ids.
      expect(lines).toEqual(['16 2x32x261', '2']);
    } finally {
      log.mockRestore();
      await rm(file, { force: true });
    }
  });
});
