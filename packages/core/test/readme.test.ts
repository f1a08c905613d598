import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);

describe('README', () => {
  it('has one ts example', () => {
    expect(blocks.length).toBe(1);
  });

  it('the example trains, saves and reloads as written', async () => {
    // Written next to this test so '@ettjs/core' and tfjs resolve from the workspace as for a user.
    const file = new URL(`./.readme-block-${process.pid}.ts`, import.meta.url);
    await writeFile(file, `${blocks[0]}\nexport {};\n`);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    // initBackend() would pick WASM here (5 s to start, slow for tiny ops); the variable it honours
    // keeps the test on the cpu backend the rest of the suite uses, unless a run asks for another.
    const previous = process.env.ETT_BACKEND;
    process.env.ETT_BACKEND = process.env.ETT_TEST_BACKEND ?? 'cpu';
    try {
      await import(/* @vite-ignore */ `${file.href}?t=${Date.now()}`);
      const lines = log.mock.calls.map((c) => c.map(String).join(' '));
      if (process.env.SHOW_README_LOG) process.stderr.write(`${lines.join('\n')}\n`);
      const losses = lines.filter((l) => l.startsWith('step ')).map((l) => Number(l.split(' loss ')[1]));
      expect(losses).toHaveLength(3);
      // y has variance ≈ 1 + 4 + 0.25 and the mean 0.3² on top; training drives the loss to ~0.
      expect(losses[0]).toBeGreaterThan(1);
      expect(losses[2]).toBeLessThan(losses[0] / 100);
      expect(lines).toContain('weight 1.00 -2.00 0.50 bias 0.30');
      expect(lines).toContain('max difference after reload: 0');
      expect(lines).toContain(
        'optimizer checkpoint: exp_avg.bias, exp_avg.weight, exp_avg_sq.bias, exp_avg_sq.weight, step.bias, step.weight',
      );
    } finally {
      if (previous === undefined) delete process.env.ETT_BACKEND;
      else process.env.ETT_BACKEND = previous;
      log.mockRestore();
      await rm(file, { force: true });
    }
  });
});
