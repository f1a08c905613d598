import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

describe('README', () => {
  it('has a ts example', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });

  blocks.forEach((code, i) => {
    it(`ts block ${i + 1} runs as written`, async () => {
      const file = new URL(`./.readme-block-${i}.ts`, import.meta.url);
      await writeFile(file, `${code}\nexport {};\n`);
      const log = vi.spyOn(console, 'log').mockImplementation(() => {});
      try {
        await import(/* @vite-ignore */ `${file.href}?t=${Date.now()}`);
        const lines = log.mock.calls.map((c) => c.map(String).join(' '));
        expect(lines.at(-1)).toBe('120 200 true');
        expect(lines.some((l) => /^Resumed from .*step-00000120 at step 120/.test(l))).toBe(true);
      } finally {
        log.mockRestore();
        await rm(file, { force: true });
      }
    });
  });
});
