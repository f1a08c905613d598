// Runs the ```ts blocks of README.md, so the documented usage cannot rot.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, expect, it, vi } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = fs.readFileSync(path.join(here, '..', 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

afterAll(async () => {
  await tf.setBackend('cpu');
});

it('README has a usage block', () => {
  expect(blocks.length).toBeGreaterThan(0);
});

it.each(blocks.map((b, i) => [i, b] as const))('README block %i runs', async (i, code) => {
  const file = path.join(here, `.readme-block-${i}.ts`);
  // The package's own name resolves to src through the workspace, as in a user's project.
  fs.writeFileSync(file, code);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await import(/* @vite-ignore */ `${file}?t=${Date.now()}`);
    const printed = log.mock.calls.map((c) => c.join(' ')).join('\n');
    expect(printed).toMatch(/^wasm \(@tensorflow\/tfjs-backend-wasm 4\.22\.0\), 2 threads: asked for wasm/);
    expect(printed).toContain('\n18\n');
    expect(printed).toMatch(/patched kernels \(wasm\)\n {2}Conv2DBackpropFilter/);
  } finally {
    log.mockRestore();
    fs.rmSync(file, { force: true });
    await tf.setBackend('cpu');
  }
});
