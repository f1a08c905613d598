// Training on WebGPU end to end: stage 2 (ETT with the critic) and stage 3 gen through the Trainer,
// with every host read asynchronous, against the same run on WASM. On this project's machines it
// runs on a software GPU (Mesa llvmpipe through Dawn's OpenGL ES backend); CI fails if WebGPU does
// not start there, elsewhere the test is skipped with the reason.
import { initBackend } from '@ettjs/backend';
import { hostReadsAreSync, pendingHostChecks } from '@ettjs/core';
import type { StepRecord } from '@ettjs/trainer';
import { VQInputError } from '@ettjs/vector-quantizer';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { batches, fitTiny, tinyModel, weights } from '../test/deferred-training';

let previous = '';
let failure: Error | null = null;
let gpu = false;
beforeAll(async () => {
  previous = tf.getBackend();
  await initBackend({ backend: 'wasm' }); // registers wasm for the reference run
  try {
    await initBackend({ backend: 'webgpu' });
    gpu = true;
  } catch (err) {
    failure = err as Error;
  }
  await tf.setBackend(previous);
});
afterAll(async () => {
  await tf.setBackend(previous);
});

function needsGpu(ctx: TestContext): void {
  if (gpu) return;
  const why = `WebGPU did not start: ${failure?.message}`;
  if (process.env['CI']) throw new Error(`${why}\n(.ci/run installs Mesa's EGL/GLES so that Dawn finds a software GPU)`);
  console.warn(`skipped: ${why}`);
  ctx.skip();
}

async function run(backend: 'wasm' | 'webgpu') {
  await tf.setBackend(backend);
  const model = tinyModel();
  const records: StepRecord[] = [];
  const counts: number[] = [];
  try {
    await fitTiny(model, batches(2), 2, 2, (r) => {
      records.push(r);
      counts.push(tf.memory().numTensors);
    });
    return { records, counts, weights: await weights(model), sync: hostReadsAreSync() };
  } finally {
    model.dispose();
    await tf.setBackend(previous);
  }
}

describe('training on webgpu', () => {
  it('stage 2 ETT and stage 3 gen train as on WASM, leak-free, with no synchronous read', async (ctx) => {
    needsGpu(ctx);
    const ref = await run('wasm');
    const gpuRun = await run('webgpu');
    expect(gpuRun.sync).toBe(false);
    expect(gpuRun.records.map((r) => r.stage)).toEqual(['semantic', 'semantic', 'post-gen', 'post-gen']);
    gpuRun.records.forEach((r, i) => {
      for (const [k, v] of Object.entries(ref.records[i].loss)) expect(r.loss[k], `step ${i + 1} ${k}`).toBeCloseTo(v, 3);
      expect(r.gradNorm).toBeCloseTo(ref.records[i].gradNorm, 2);
    });
    for (const [name, w] of Object.entries(ref.weights)) {
      const g = gpuRun.weights[name];
      const worst = Math.max(...w.map((v, j) => Math.abs(v - g[j]) / (1e-3 + Math.abs(v))));
      expect(worst, name).toBeLessThan(2e-2);
    }
    expect(gpuRun.counts[1]).toBe(gpuRun.counts[0]);
    expect(gpuRun.counts[3]).toBe(gpuRun.counts[2]);
  });

  it('a NaN image fails the step on the GPU before its update; captioning and generation are leak-free', async (ctx) => {
    needsGpu(ctx);
    await tf.setBackend('webgpu');
    const model = tinyModel();
    try {
      const before = await weights(model);
      await expect(fitTiny(model, batches(1, 0), 1, 1)).rejects.toThrow(VQInputError);
      expect(await weights(model)).toEqual(before);
      // Captioning and image generation leave nothing behind on the GPU: their queued input checks
      // are settled as they go.
      const live = tf.memory().numTensors;
      const images = tf.tensor4d(batches(1)[0].images, [2, 16, 16, 3]);
      const captions = await model.caption(images, { maxNewTokens: 3 });
      images.dispose();
      expect(captions).toHaveLength(2);
      const generated = await model.generateImages(['a', 'b']);
      expect(generated.images.shape).toEqual([2, 16, 16, 3]);
      expect(generated.codes.flat().every((c) => Number.isInteger(c) && c >= 0 && c < 16)).toBe(true);
      generated.images.dispose();
      expect(pendingHostChecks()).toBe(0);
      expect(tf.memory().numTensors).toBe(live);
    } finally {
      model.dispose();
      await tf.setBackend(previous);
    }
  });
});
