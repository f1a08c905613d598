import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSafetensorsFile, SafetensorsError, StateDictError } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoregressiveLM } from './autoregressive_lm';
import { LMConfigError } from './config';
import { HFCheckpointError } from './hf_checkpoint';

const fixture = (name: string) => fileURLToPath(new URL(`../test/fixtures/${name}`, import.meta.url));

async function logitsOf(lm: AutoregressiveLM, ids: number[][]): Promise<Float32Array> {
  const t = tf.tidy(() => lm.forwardIds({ inputIds: tf.tensor2d(ids, [ids.length, ids[0].length], 'int32') }).logits);
  const v = (await t.data()) as Float32Array;
  t.dispose();
  return v;
}

async function expectRejects(p: Promise<unknown>, type: new (...a: never[]) => Error, pattern: RegExp): Promise<void> {
  let err: unknown;
  try {
    const lm = await p;
    (lm as AutoregressiveLM).dispose();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(type);
  expect((err as Error).message).toMatch(pattern);
}

describe('HF checkpoints', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ett-lm-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('savePretrained then fromPretrained reproduces the model (untied, biases, visual head; single file then sharded)', async () => {
    const lm = new AutoregressiveLM(
      {
        architecture: 'llama',
        vocabSize: 30,
        hiddenSize: 16,
        intermediateSize: 24,
        numLayers: 2,
        numHeads: 4,
        numKVHeads: 1,
        qkvBias: true,
        outputBias: true,
        tieWordEmbeddings: false,
        visualVocabSize: 5,
        initializerRange: 0.3,
      },
      { seed: 3 },
    );
    const ids = [[1, 5, 9, 29, 0]];
    const before = await logitsOf(lm, ids);
    const out = join(dir, 'roundtrip');
    await lm.savePretrained(out);
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors']);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      num_key_value_heads: 1,
      attention_bias: true,
      tie_word_embeddings: false,
      visual_vocab_size: 5,
    });
    const file = await loadSafetensorsFile(join(out, 'model.safetensors'));
    expect(file.tensors['model.layers.0.mlp.gate_proj.weight'].shape).toEqual([24, 16]); // PyTorch [out, in]
    expect(file.tensors['visual_head.weight'].shape).toEqual([5, 16]);
    expect(file.tensors['lm_head.weight'].dtype).toBe('F32');
    const loaded = await AutoregressiveLM.fromPretrained(out);
    expect(Array.from(await logitsOf(loaded, ids))).toEqual(Array.from(before));
    loaded.dispose();

    await lm.savePretrained(out, { maxShardBytes: 4000 });
    const files = (await readdir(out)).sort();
    expect(files).not.toContain('model.safetensors'); // the stale single file is removed
    expect(files).toContain('model.safetensors.index.json');
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(2);
    const sharded = await AutoregressiveLM.fromPretrained(out);
    expect(Array.from(await logitsOf(sharded, ids))).toEqual(Array.from(before));
    sharded.dispose();
    lm.dispose();
  });

  it('a tied qwen2 checkpoint saves no lm_head and loads back', async () => {
    const lm = await AutoregressiveLM.fromPretrained(fixture('qwen2-tiny'));
    const out = join(dir, 'qwen2');
    await lm.savePretrained(out);
    const file = await loadSafetensorsFile(join(out, 'model.safetensors'));
    expect(Object.keys(file.tensors)).not.toContain('lm_head.weight');
    expect(file.tensors['model.layers.0.self_attn.q_proj.bias'].shape).toEqual([32]);
    const back = await AutoregressiveLM.fromPretrained(out);
    expect(Array.from(await logitsOf(back, [[3, 4, 5]]))).toEqual(Array.from(await logitsOf(lm, [[3, 4, 5]])));
    lm.dispose();
    back.dispose();
  });

  it('fromPretrained can add a fresh visual head to a text checkpoint', async () => {
    const lm = await AutoregressiveLM.fromPretrained(fixture('llama-tiny'), { config: { visualVocabSize: 12 }, seed: 1 });
    expect(lm.visual_head?.weight.shape).toEqual([32, 12]);
    lm.dispose();
  });

  it('reports missing, unexpected and mis-shaped tensors by name', async () => {
    const src = fixture('llama-tiny');
    const bad = join(dir, 'bad');
    await cp(src, bad, { recursive: true });
    const cfg = JSON.parse(await readFile(join(src, 'config.json'), 'utf8'));
    await writeFile(join(bad, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 60, num_hidden_layers: 3 }));
    await expectRejects(
      AutoregressiveLM.fromPretrained(bad),
      StateDictError,
      /"model.layers.0.mlp.gate_proj.weight": shape mismatch, expected \[60,32\], got \[64,32\]/,
    );
    await expectRejects(AutoregressiveLM.fromPretrained(bad), StateDictError, /missing tensor "model.layers.2.self_attn.q_proj.weight"/);
    await writeFile(join(bad, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 1 }));
    await expectRejects(AutoregressiveLM.fromPretrained(bad), StateDictError, /unexpected tensor "model.layers.1.mlp.up_proj.weight"/);
  });

  it('rejects unsupported or incomplete configs and corrupt or missing weights clearly', async () => {
    const src = fixture('llama-tiny');
    const bad = join(dir, 'bad2');
    await cp(src, bad, { recursive: true });
    const cfg = JSON.parse(await readFile(join(src, 'config.json'), 'utf8'));
    await writeFile(join(bad, 'config.json'), JSON.stringify({ ...cfg, model_type: 'gpt2' }));
    await expectRejects(AutoregressiveLM.fromPretrained(bad), LMConfigError, /model_type "gpt2" is not supported/);
    const { hidden_size: _, ...noHidden } = cfg;
    await writeFile(join(bad, 'config.json'), JSON.stringify(noHidden));
    await expectRejects(AutoregressiveLM.fromPretrained(bad), LMConfigError, /missing required key "hidden_size"/);
    await writeFile(join(bad, 'config.json'), JSON.stringify({ ...cfg, rope_scaling: { rope_type: 'yarn', factor: 2 } }));
    await expectRejects(AutoregressiveLM.fromPretrained(bad), LMConfigError, /rope_scaling type "yarn" is not supported/);
    await writeFile(join(bad, 'config.json'), JSON.stringify(cfg));
    const bytes = await readFile(join(bad, 'model.safetensors'));
    await writeFile(join(bad, 'model.safetensors'), bytes.subarray(0, bytes.length - 100));
    await expectRejects(AutoregressiveLM.fromPretrained(bad), SafetensorsError, /model\.safetensors.*truncated|run past/);
    await rm(join(bad, 'model.safetensors'));
    await expectRejects(
      AutoregressiveLM.fromPretrained(bad),
      HFCheckpointError,
      /no model\.safetensors or model\.safetensors\.index\.json/,
    );
    await expectRejects(
      AutoregressiveLM.fromPretrained(join(dir, 'nowhere')),
      HFCheckpointError,
      /cannot read the checkpoint directory|config\.json: not found/,
    );
    const sharded = join(dir, 'bad3');
    await cp(fixture('qwen2-tiny'), sharded, { recursive: true });
    await rm(join(sharded, 'model-00002-of-00002.safetensors'));
    await expectRejects(
      AutoregressiveLM.fromPretrained(sharded),
      HFCheckpointError,
      /shard "model-00002-of-00002.safetensors" listed in model.safetensors.index.json is missing/,
    );
  });
});
