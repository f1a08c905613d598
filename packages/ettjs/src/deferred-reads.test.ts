// Where tensors cannot be read synchronously (WebGPU), input checks and the quantizer's bookkeeping
// read later, asynchronously. Here that mode is forced on the cpu backend and checked against the
// synchronous path: training must be the same, to the bit, and bad input must still stop a step
// before its update.
import { initBackend } from '@ettjs/backend';
import { setHostReadMode } from '@ettjs/core';
import type { StepRecord } from '@ettjs/trainer';
import { VQInputError, type VQTokenizer } from '@ettjs/vector-quantizer';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { batches, fitTiny, tinyModel, weights } from '../test/deferred-training';

// On WASM, the backend users get: the cpu backend's convolution gradients take minutes here.
let previous = '';
beforeAll(async () => {
  previous = tf.getBackend();
  await initBackend({ backend: 'wasm' });
});
afterAll(async () => {
  await tf.setBackend(previous);
});
afterEach(() => {
  setHostReadMode('auto');
});

async function run(mode: 'sync' | 'deferred') {
  setHostReadMode(mode);
  const model = tinyModel();
  const records: StepRecord[] = [];
  const counts: number[] = [];
  try {
    await fitTiny(model, batches(3), 3, 2, (r) => {
      records.push(r);
      counts.push(tf.memory().numTensors);
    });
    const q = (model.tokenizer as VQTokenizer).quantize;
    return { records, counts, weights: await weights(model), usage: q.usage, unsettled: q.unsettledBatches };
  } finally {
    model.dispose();
  }
}

describe('training with deferred host reads', () => {
  it('gives the same losses, weights and codebook bookkeeping as synchronous reads, and stats one step behind', async () => {
    const sync = await run('sync');
    const deferred = await run('deferred');
    expect(deferred.records.map((r) => r.stage)).toEqual(['semantic', 'semantic', 'semantic', 'post-gen', 'post-gen']);
    expect(deferred.records.map((r) => r.loss)).toEqual(sync.records.map((r) => r.loss));
    expect(deferred.records.map((r) => r.discLoss)).toEqual(sync.records.map((r) => r.discLoss));
    // Codebook rows restarted from the latents, EMA-free IBQ codebook, LM, critic: all identical.
    expect(deferred.weights).toEqual(sync.weights);
    expect(deferred.usage).toBe(sync.usage);
    expect(deferred.unsettled).toBe(0);
    // The stats of a deferred step are those settled by the previous step's afterStep.
    const perplexity = (rs: StepRecord[]) => rs.slice(0, 3).map((r) => r.stats?.perplexity);
    expect(perplexity(deferred.records)[0]).toBeNaN();
    expect(perplexity(deferred.records).slice(1)).toEqual(perplexity(sync.records).slice(0, 2));
    expect(perplexity(sync.records).every((p) => p !== undefined && p >= 1 && p <= 16)).toBe(true);
    // Leak-free in both modes: the live tensor count is flat over the steps of each stage.
    for (const r of [sync, deferred]) {
      expect(r.counts[2]).toBe(r.counts[1]);
      expect(r.counts[4]).toBe(r.counts[3]);
    }
  });

  it('a NaN image stops the step before its update, even though the check runs after the forward pass', async () => {
    setHostReadMode('deferred');
    const model = tinyModel();
    try {
      let afterFirst: Record<string, number[]> | null = null;
      const reading: Promise<void>[] = [];
      const fit = fitTiny(model, batches(3, 1), 3, 1, (r) => {
        if (r.step === 1) {
          reading.push(
            weights(model).then((w) => {
              afterFirst = w;
            }),
          );
        }
      });
      await expect(fit).rejects.toThrow(VQInputError);
      await expect(fitTiny(model, batches(2, 0), 1, 1)).rejects.toThrow(/images contain 1 NaN value/);
      await Promise.all(reading);
      expect(afterFirst).not.toBeNull();
      // Neither failed step changed a weight: the model is as the first step left it.
      expect(await weights(model)).toEqual(afterFirst);
      // The failed steps' batches (NaN latents) stay out of the codebook: every code restarts after
      // one unused step, from the latest recorded latents, in the next good step's update.
      await fitTiny(model, batches(2), 1, 1);
      const w = await weights(model);
      expect(w['tokenizer.quantize.embedding'].every(Number.isFinite)).toBe(true);
      expect(w['tokenizer.quantize.embedding']).not.toEqual(afterFirst?.['tokenizer.quantize.embedding']);
    } finally {
      model.dispose();
    }
  });
});
