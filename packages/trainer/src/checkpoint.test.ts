import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Toy } from '../test/toy';
import {
  type TrainerState,
  jsonDifferences,
  latestCheckpoint,
  listCheckpoints,
  readCheckpointMeta,
  readCheckpointTensors,
  writeCheckpoint,
} from './checkpoint';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ettjs-ckpt-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const state = (step: number): TrainerState => ({
  format: 'ettjs-trainer',
  version: 1,
  step,
  stage: 's',
  stageIndex: 0,
  stageStep: step,
  stages: ['s'],
  seed: 0,
  dataCursor: null,
  guard: { consecutive: 0, skipped: 0 },
  metrics: { recent: [], evals: [] },
  savedAt: '',
});

describe('checkpoint writer', () => {
  it('a process killed while writing leaves the previous checkpoint complete, loadable and latest', async () => {
    const child = join(root, 'child.cjs');
    await build({
      entryPoints: [fileURLToPath(new URL('../test/checkpoint-child.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      outfile: child,
      conditions: ['@ettjs/source'],
      logLevel: 'error',
      // tfjs-backend-cpu registers itself on import; its sideEffects annotation would let esbuild drop it.
      ignoreAnnotations: true,
    });
    const dir = join(root, 'killed');
    const n = 4_000_000; // 16 MB of float32: long enough to be caught mid-write.
    const proc = spawn(process.execPath, [child, dir, String(n)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let sawTmp = false;
    proc.stderr.on('data', (d) => {
      err += d;
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      proc.on('exit', (code, signal) => resolve({ code, signal })),
    );
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on('data', async (d) => {
        out += d;
        if (!out.includes('saving-2')) return;
        // Kill as soon as the second checkpoint's temporary directory exists.
        for (let i = 0; i < 20_000 && !sawTmp; i++) {
          const entries = await readdir(dir);
          sawTmp = entries.some((e) => e.startsWith('.tmp-step-00000002'));
          if (!sawTmp) await new Promise((r) => setTimeout(r, 1));
        }
        proc.kill('SIGKILL');
        resolve();
      });
      proc.on('exit', () => resolve());
      proc.on('error', reject);
    });
    const { signal } = await exited;
    expect(err).not.toMatch(/Error/); // tfjs prints a banner on stderr; nothing else
    expect(signal).toBe('SIGKILL');
    expect(sawTmp).toBe(true);
    expect(out).not.toContain('saved-2');

    // The half-written step 2 is invisible; step 1 is latest and loads intact.
    expect(await listCheckpoints(dir)).toEqual([join(dir, 'step-00000001')]);
    expect(await latestCheckpoint(dir)).toBe(join(dir, 'step-00000001'));
    const { trainer, config } = await readCheckpointMeta(join(dir, 'step-00000001'));
    expect(trainer.step).toBe(1);
    expect(config).toEqual({ n });
    const tensors = await readCheckpointTensors(join(dir, 'step-00000001'), 'model.safetensors');
    const w = tensors.w;
    expect(w.shape).toEqual([n]);
    const minMax = tf.tidy(() => tf.stack([tf.min(w), tf.max(w)]));
    expect(Array.from(await minMax.data())).toEqual([1, 1]);
    tf.dispose([minMax, ...Object.values(tensors)]);

    // The next successful save clears the leftover temporary directory.
    const model = new Toy(1);
    await writeCheckpoint(dir, { config: {}, model, optimizer: {}, trainer: state(3) });
    expect((await readdir(dir)).filter((e) => e.startsWith('.'))).toEqual([]);
    expect(await latestCheckpoint(dir)).toBe(join(dir, 'step-00000003'));
    model.dispose();
  });

  it('re-saving the same step replaces it atomically', async () => {
    const dir = join(root, 'again');
    const model = new Toy(1);
    await writeCheckpoint(dir, { config: { v: 1 }, model, optimizer: {}, trainer: state(2) });
    await writeCheckpoint(dir, { config: { v: 2 }, model, optimizer: {}, trainer: state(2) });
    expect((await readdir(dir)).sort()).toEqual(['latest', 'step-00000002']);
    expect((await readCheckpointMeta(join(dir, 'step-00000002'))).config).toEqual({ v: 2 });
    model.dispose();
  });

  it('rejects an incomplete or foreign directory with a clear error', async () => {
    await expect(readCheckpointMeta(join(root, 'nothing'))).rejects.toThrow(/is not a complete checkpoint: config\.json is missing/);
    expect(await latestCheckpoint(join(root, 'nothing'))).toBeNull();
  });

  it('lists config differences by path', () => {
    expect(jsonDifferences({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [1, 3] }, d: true })).toEqual([
      'config.b.c.1: checkpoint has 2, this run has 3',
      'config.d: checkpoint has undefined, this run has true',
    ]);
  });
});
