import { readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { expect, it, vi } from 'vitest';

// Every ```ts block of README.md runs here, as written (imports by the public package name).
it('README examples run', async () => {
  const readme = await readFile(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  expect(blocks.length).toBeGreaterThan(0);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    for (const [i, code] of blocks.entries()) {
      const file = fileURLToPath(new URL(`./readme-snippet-${i}.tmp.ts`, import.meta.url));
      await writeFile(file, code);
      try {
        await import(/* @vite-ignore */ `${file}?t=${Date.now()}`);
      } finally {
        await rm(file, { force: true });
      }
    }
    expect(log).toHaveBeenCalledWith(true);
  } finally {
    log.mockRestore();
  }
});
