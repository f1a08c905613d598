import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

describe('README', () => {
  it('has exactly one ts example', () => {
    expect(blocks.length).toBe(1);
  });

  it('the ts example runs as written and leaks nothing', async () => {
    const file = new URL('./.readme-block-0.ts', import.meta.url);
    await writeFile(file, `${blocks[0]}\nexport {};\n`);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      await import(/* @vite-ignore */ `${file.href}?t=${Date.now()}`);
      const lines = log.mock.calls.map((c) => c.map(String).join(' '));
      expect(lines).toEqual(['2,16 true quant,entropy']);
    } finally {
      log.mockRestore();
      await rm(file, { force: true });
    }
  });
});
