import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoregressiveLM } from './autoregressive_lm';
import { generate } from './generate';

// Expected values come from bench/reference/lm_golden.py: a float64 PyTorch implementation of the
// HF LLaMA/Qwen2 equations, run on the exact (F16/BF16-rounded) weights in these fixture files.
interface Expected {
  input_ids: number[][];
  attention_mask: number[][];
  logits_shape: number[];
  logits: number[];
  hidden_shape: number[];
  hidden: number[];
  greedy: { prompt: number[]; new_tokens: number[] };
}

const fixture = (name: string) => fileURLToPath(new URL(`../test/fixtures/${name}`, import.meta.url));

for (const name of ['llama-tiny', 'qwen2-tiny']) {
  describe(`golden ${name}`, () => {
    let lm: AutoregressiveLM;
    let expected: Expected;
    beforeAll(async () => {
      lm = await AutoregressiveLM.fromPretrained(fixture(name));
      expected = JSON.parse(await readFile(fixture(`${name}/expected.json`), 'utf8'));
    });
    afterAll(() => lm.dispose());

    it('reproduces the reference logits and last hidden states to 1e-4 (with a left-padding mask)', async () => {
      const [b, t, v] = expected.logits_shape;
      const c = expected.hidden_shape[2];
      const { logits, hidden } = tf.tidy(() =>
        lm.forwardIds({
          inputIds: tf.tensor2d(expected.input_ids, [b, t], 'int32'),
          attentionMask: tf.tensor2d(expected.attention_mask, [b, t]),
        }),
      );
      const [got, gotHidden] = [await logits.data(), await hidden.data()];
      tf.dispose([logits, hidden]);
      let maxErr = 0;
      let compared = 0;
      for (let i = 0; i < b; i++) {
        for (let j = 0; j < t; j++) {
          if (!expected.attention_mask[i][j]) continue; // outputs at padded query positions are unspecified
          for (let k = 0; k < v; k++) maxErr = Math.max(maxErr, Math.abs(got[(i * t + j) * v + k] - expected.logits[(i * t + j) * v + k]));
          for (let k = 0; k < c; k++)
            maxErr = Math.max(maxErr, Math.abs(gotHidden[(i * t + j) * c + k] - expected.hidden[(i * t + j) * c + k]));
          compared++;
        }
      }
      expect(compared).toBe(2 * t - 3);
      expect(maxErr).toBeLessThan(1e-4);
    });

    it('greedy decoding gives the reference tokens, with and without the KV cache', async () => {
      const { prompt, new_tokens } = expected.greedy;
      for (const useCache of [true, false]) {
        const out = await generate(lm, { inputIds: [prompt], maxNewTokens: new_tokens.length, stopTokens: [], useCache });
        expect(out.tokens[0]).toEqual(new_tokens);
        expect(out.finishReasons).toEqual(['length']);
      }
    });
  });
}
