import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LMConfigError, lmConfigFromHF, lmConfigToHF } from './config';

const fixture = (name: string) => fileURLToPath(new URL(`../test/fixtures/${name}/config.json`, import.meta.url));

describe('LM config', () => {
  it('reads HF llama and qwen2 configs with HF defaults and writes them back', async () => {
    const llama = lmConfigFromHF(JSON.parse(await readFile(fixture('llama-tiny'), 'utf8')));
    expect(llama).toMatchObject({
      architecture: 'llama',
      headDim: 8,
      numKVHeads: 2,
      qkvBias: false,
      tieWordEmbeddings: false,
      eosTokenId: 2,
    });
    expect(llama.ropeScaling).toEqual({
      kind: 'llama3',
      factor: 4,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 16,
    });
    const qwen = lmConfigFromHF(JSON.parse(await readFile(fixture('qwen2-tiny'), 'utf8')));
    expect(qwen).toMatchObject({ architecture: 'qwen2', qkvBias: true, outputBias: false, tieWordEmbeddings: true, ropeTheta: 1e6 });
    expect(lmConfigFromHF(lmConfigToHF(qwen))).toEqual(qwen);
    expect(lmConfigFromHF(lmConfigToHF(llama))).toEqual(llama);
    // keys left out take HF's class defaults
    const minimal = lmConfigFromHF({
      model_type: 'llama',
      vocab_size: 10,
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
    });
    expect(minimal).toMatchObject({
      numKVHeads: 2,
      maxPositionEmbeddings: 2048,
      ropeTheta: 10000,
      rmsNormEps: 1e-6,
      tieWordEmbeddings: false,
    });
  });

  it('rejects what it cannot represent', () => {
    const base = {
      model_type: 'qwen2',
      vocab_size: 10,
      hidden_size: 8,
      intermediate_size: 16,
      num_hidden_layers: 1,
      num_attention_heads: 2,
    };
    expect(() => lmConfigFromHF({ ...base, model_type: 'mistral' })).toThrow(/model_type "mistral" is not supported/);
    expect(() => lmConfigFromHF({ ...base, use_sliding_window: true })).toThrow(/use_sliding_window/);
    expect(() => lmConfigFromHF({ ...base, hidden_act: 'gelu' })).toThrow(/hidden_act "gelu"/);
    expect(() => lmConfigFromHF({ ...base, vocab_size: '10' })).toThrow(/"vocab_size" must be a number/);
    expect(() => lmConfigFromHF({ ...base, num_key_value_heads: 3 })).toThrow(LMConfigError);
    expect(() => lmConfigFromHF([])).toThrow(/expected a JSON object/);
  });
});
