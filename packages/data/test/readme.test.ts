import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const tmp = fileURLToPath(new URL('./readme-example.tmp.ts', import.meta.url));
afterAll(() => rmSync(tmp, { force: true }));

it('README has a ts example and it runs', async () => {
  expect(blocks.length).toBeGreaterThan(0);
  const src = blocks.join('\n').replaceAll("from '@ettjs/data'", `from '${fileURLToPath(new URL('../src/index.ts', import.meta.url))}'`);
  const lines = src.split('\n');
  const imports = lines.filter((l) => l.startsWith('import '));
  const body = lines.filter((l) => !l.startsWith('import '));
  writeFileSync(tmp, `${imports.join('\n')}\nexport default async function run() {\n${body.join('\n')}\n}\n`);
  const log = console.log;
  const logged: unknown[] = [];
  console.log = (...a: unknown[]) => logged.push(a.join(' '));
  try {
    const mod = (await import(/* @vite-ignore */ tmp)) as { default: () => Promise<void> };
    await mod.default();
  } finally {
    console.log = log;
  }
  expect(String(logged[0])).toMatch(/^a \w+ \w+ .+\. text: [A-Z0-9]{2}\.$/);
});
