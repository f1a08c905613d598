import { Rng } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoregressiveLM } from './autoregressive_lm';
import { generate, generateVisualCodes } from './generate';
import { seededRandom } from './sampling';

describe('generate', () => {
  let lm: AutoregressiveLM;
  beforeAll(() => {
    lm = new AutoregressiveLM(
      {
        vocabSize: 40,
        hiddenSize: 16,
        intermediateSize: 32,
        numLayers: 2,
        numHeads: 4,
        numKVHeads: 2,
        maxPositionEmbeddings: 64,
        initializerRange: 0.5,
        visualVocabSize: 9,
        eosTokenId: 39,
      },
      { seed: 11 },
    );
  });
  afterAll(() => lm.dispose());

  it('cached sampling gives the same tokens as full recomputation (same seed)', async () => {
    const opts = {
      inputIds: [
        [1, 2, 3],
        [4, 5, 6],
      ],
      maxNewTokens: 8,
      doSample: true,
      temperature: 1.3,
      topK: 10,
      topP: 0.9,
      stopTokens: [],
      seed: 9,
    };
    const cached = await generate(lm, opts);
    const full = await generate(lm, { ...opts, useCache: false });
    expect(cached.tokens).toEqual(full.tokens);
    expect(cached.tokens[0]).toHaveLength(8);
    const again = await generate(lm, opts);
    expect(again.tokens).toEqual(cached.tokens);
    // a core Rng stream is accepted too, and two equal streams give equal samples
    const { seed: _, ...noSeed } = opts;
    const r1 = await generate(lm, { ...noSeed, random: new Rng(5) });
    const r2 = await generate(lm, { ...noSeed, random: new Rng(5), useCache: false });
    expect(r1.tokens).toEqual(r2.tokens);
  });

  it('topK 1 sampling equals greedy', async () => {
    const greedy = await generate(lm, { inputIds: [[7, 8]], maxNewTokens: 8, stopTokens: [] });
    const k1 = await generate(lm, {
      inputIds: [[7, 8]],
      maxNewTokens: 8,
      stopTokens: [],
      doSample: true,
      topK: 1,
      temperature: 3,
      seed: 4,
    });
    expect(k1.tokens).toEqual(greedy.tokens);
  });

  it('stops at a stop token (not included) and reports why each row ended', async () => {
    const free = await generate(lm, { inputIds: [[1, 2, 3]], maxNewTokens: 6, stopTokens: [] });
    const stop = free.tokens[0][2];
    const out = await generate(lm, { inputIds: [[1, 2, 3]], maxNewTokens: 6, stopTokens: [stop] });
    expect(out.tokens[0]).toEqual(free.tokens[0].slice(0, free.tokens[0].indexOf(stop)));
    expect(out.finishReasons).toEqual(['stop']);
    expect(free.finishReasons).toEqual(['length']);
    const none = await generate(lm, { inputIds: [[1]], maxNewTokens: 0 });
    expect(none.tokens).toEqual([[]]);
  });

  it('a left-padded batch row generates what the unpadded prompt generates', async () => {
    const alone = await generate(lm, { inputIds: [[5, 6, 7]], maxNewTokens: 6, stopTokens: [] });
    for (const useCache of [true, false]) {
      const batch = await generate(lm, {
        inputIds: [
          [0, 0, 5, 6, 7],
          [1, 2, 3, 4, 5],
        ],
        attentionMask: [
          [0, 0, 1, 1, 1],
          [1, 1, 1, 1, 1],
        ],
        maxNewTokens: 6,
        stopTokens: [],
        useCache,
      });
      expect(batch.tokens[0]).toEqual(alone.tokens[0]);
    }
  });

  it('generates from an inputsEmbeds prefix exactly as from the ids', async () => {
    const ids = [[3, 9, 27]];
    const fromIds = await generate(lm, { inputIds: ids, maxNewTokens: 5, stopTokens: [] });
    const embeds = tf.tidy(() => lm.embed(tf.tensor2d(ids, [1, 3], 'int32')));
    const fromEmbeds = await generate(lm, { inputsEmbeds: embeds, maxNewTokens: 5, stopTokens: [] });
    embeds.dispose();
    expect(fromEmbeds.tokens).toEqual(fromIds.tokens);
  });

  it('uses no extra tensors per generated token', async () => {
    const counts: number[] = [];
    const random = seededRandom(1);
    for (const n of [1, 4, 8]) {
      await generate(lm, { inputIds: [[1, 2]], maxNewTokens: n, stopTokens: [], doSample: true, random });
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
  });

  it('generateVisualCodes samples only visual codes and matches a manual full-recompute greedy loop', async () => {
    const table = tf.randomNormal([9, 16], 0, 1, 'float32', 3);
    const embedCodes = (codes: tf.Tensor2D) =>
      tf.reshape(tf.gather(table, tf.reshape(codes, [-1])), [codes.shape[0], codes.shape[1], 16]) as tf.Tensor3D;
    const prefix = tf.tidy(() => lm.embed(tf.tensor2d([[1, 2, 3]], [1, 3], 'int32')));
    const codes = await generateVisualCodes(lm, { inputsEmbeds: prefix, numCodes: 6, embedCodes });
    // reference: recompute the whole sequence each step, argmax of the visual head at the last position
    const manual: number[] = [];
    for (let i = 0; i < 6; i++) {
      const logits = tf.tidy(() => {
        const seq = manual.length ? tf.concat([prefix, embedCodes(tf.tensor2d([manual], [1, manual.length], 'int32'))], 1) : prefix;
        const { hidden } = lm.forward({ inputsEmbeds: seq as tf.Tensor3D });
        return lm.visualLogits(hidden);
      });
      const v = await logits.data();
      logits.dispose();
      const last = Array.from(v.subarray(v.length - 9));
      manual.push(last.indexOf(Math.max(...last)));
    }
    expect(codes).toEqual([manual]);
    const constrained = await generateVisualCodes(lm, {
      inputsEmbeds: prefix,
      numCodes: 20,
      embedCodes,
      doSample: true,
      topK: 0,
      allowedCodes: [2, 5],
      seed: 3,
    });
    expect(new Set(constrained[0])).toEqual(new Set([2, 5]));
    tf.dispose([table, prefix]);
  });

  it('rejects bad arguments', async () => {
    await expect(generate(lm, { maxNewTokens: 2 })).rejects.toThrow(/exactly one of inputIds or inputsEmbeds/);
    await expect(generate(lm, { inputIds: [[1, 2], [3]] })).rejects.toThrow(/equal-length rows/);
    await expect(generate(lm, { inputIds: [[1, 40]] })).rejects.toThrow(/token id 40/);
    await expect(generate(lm, { inputIds: [new Array(62).fill(1)], maxNewTokens: 5, stopTokens: [] })).rejects.toThrow(
      /exceeds maxPositionEmbeddings 64/,
    );
    await expect(generate(lm, { inputIds: [[1]], doSample: true, temperature: -1 })).rejects.toThrow(/temperature must be > 0/);
    await expect(generate(lm, { inputIds: [[1]], attentionMask: [[1, 1]] })).rejects.toThrow(/attentionMask must be 1 rows of 1/);
  });
});
