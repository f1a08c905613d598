import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AutoregressiveLM, ByteTokenizer } from '@ettjs/autoregressive-lm';
import { type CausalLM, loadSafetensorsFile, Module } from '@ettjs/core';
import { createVisualAdapter } from '@ettjs/projector';
import { VQ_TOKENIZER_TINY, VQTokenizer } from '@ettjs/vector-quantizer';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ETTModel, ETTModelError } from './ett-model';
import { IGNORE_INDEX } from './sequence';

const S = 16;

/** A user's CausalLM without a KV cache: delegates to an AutoregressiveLM it does not own. */
class PlainLM extends Module implements CausalLM {
  constructor(private readonly inner: CausalLM) {
    super();
  }
  get hiddenSize() {
    return this.inner.hiddenSize;
  }
  get vocabSize() {
    return this.inner.vocabSize;
  }
  embed(ids: tf.Tensor2D) {
    return this.inner.embed(ids);
  }
  forward(input: { inputsEmbeds: tf.Tensor3D }) {
    return this.inner.forward(input);
  }
}
const tinyTokenizer = () =>
  new VQTokenizer({ ...VQ_TOKENIZER_TINY, ch: 8, chMult: [1, 2, 2], zChannels: 8, codeDim: 8, codebookSize: 32, normGroups: 4, seed: 1 });
const tinyLM = (text: ByteTokenizer, visual = 0, architecture: 'llama' | 'qwen2' = 'llama') =>
  new AutoregressiveLM(
    {
      architecture,
      vocabSize: text.vocabSize,
      hiddenSize: 16,
      intermediateSize: 32,
      numLayers: 1,
      numHeads: 2,
      numKVHeads: 1,
      maxPositionEmbeddings: 96,
      visualVocabSize: visual,
    },
    { seed: 2 },
  );
// (qwen2, as the pipeline builds: a llama LM with q/k/v biases only has no HF form to save to)
const build = (kind: 'projector' | 'index', visual = 0, architecture: 'llama' | 'qwen2' = 'llama') => {
  const text = new ByteTokenizer();
  const tokenizer = tinyTokenizer();
  const lm = tinyLM(text, visual, architecture);
  const adapter =
    kind === 'projector'
      ? createVisualAdapter({ kind, inputDim: tokenizer.codeDim, outputDim: lm.hiddenSize })
      : createVisualAdapter({ kind, codebookSize: tokenizer.codebookSize, outputDim: lm.hiddenSize });
  return new ETTModel({ tokenizer, adapter, lm, text, imageSize: S });
};

describe('ETTModel', () => {
  let images: tf.Tensor4D;
  beforeAll(() => {
    images = tf.tidy(() => tf.tanh(tf.randomNormal([2, S, S, 3], 0, 1, 'float32', 3)) as tf.Tensor4D);
  });
  afterAll(() => images.dispose());

  it('lays out [BOS] <boi> visual <eoi> caption [EOS] and supervises only the caption', () => {
    const model = build('projector');
    const captions = [model.text.encode('ab'), model.text.encode('c')];
    const out = model.captionForward(images, captions);
    const N = model.numVisual; // (16 / 4)^2
    expect(N).toBe(16);
    expect(out.logits.shape).toEqual([2, 2 + N + 4, model.lm.vocabSize]);
    const t = out.targets.arraySync();
    const eoi = 2 + N;
    expect(t[0].slice(0, eoi).every((v) => v === IGNORE_INDEX)).toBe(true);
    expect(t[0].slice(eoi, eoi + 3)).toEqual([...captions[0], model.ids.eos]);
    expect(t[1].slice(eoi, eoi + 3)).toEqual([...captions[1], model.ids.eos, IGNORE_INDEX]);
    tf.dispose([out.logits, out.targets, out.tokens.quantized, out.tokens.indices, ...Object.values(out.tokens.losses)]);
    model.dispose();
  });

  it('sends the caption gradient into the tokenizer through the projector (ETT), and none through the index table', () => {
    const captionLossOf = (model: ETTModel, captions: number[][]) => () => {
      const o = model.captionForward(images, captions);
      const logp = tf.logSoftmax(o.logits);
      const mask = tf.cast(tf.notEqual(o.targets, IGNORE_INDEX), 'float32');
      const picked = tf.sum(tf.mul(logp, tf.oneHot(tf.maximum(o.targets, tf.scalar(0, 'int32')) as tf.Tensor2D, o.logits.shape[2])), -1);
      return tf.neg(tf.div(tf.sum(tf.mul(picked, mask)), tf.sum(mask))) as tf.Scalar;
    };
    const ett = build('projector');
    try {
      const named = ett.tokenizer.namedTrainableVariables();
      const f = captionLossOf(ett, [ett.text.encode('hi'), ett.text.encode('yo')]);
      const norms = tf.tidy(() => {
        const { grads } = tf.variableGrads(
          f,
          named.map(([, v]) => v),
        );
        return named.map(([n, v]) => [n, grads[v.name] ? tf.norm(grads[v.name]).dataSync()[0] : 0] as const);
      });
      const codebook = norms.filter(([n]) => n.startsWith('quantize.'));
      const encoder = norms.filter(([n]) => n.startsWith('encoder.'));
      expect(codebook.length, `no quantizer parameter among ${norms.map(([n]) => n).join(', ')}`).toBeGreaterThan(0);
      expect(codebook.every(([, g]) => g > 0)).toBe(true);
      expect(encoder.length).toBeGreaterThan(0);
      expect(encoder.filter(([n]) => n.endsWith('weight')).every(([, g]) => g > 0)).toBe(true);
    } finally {
      ett.dispose();
    }
    const index = build('index');
    try {
      // The index baseline feeds the LM a table lookup: no path from the caption loss to the tokenizer.
      const f = captionLossOf(index, [index.text.encode('hi'), index.text.encode('yo')]);
      expect(() => tf.tidy(() => tf.variableGrads(f, index.tokenizer.trainableVariables()))).toThrow(
        /Cannot find a connection between any variable and the result/,
      );
    } finally {
      index.dispose();
    }
  });

  it('captions greedily with the KV cache exactly as a plain CausalLM without cache would', async () => {
    const model = build('projector');
    const viaCache = await model.caption(images, { maxNewTokens: 6 });
    // The same weights behind a CausalLM that is not an AutoregressiveLM take the recompute path.
    const twin = new ETTModel({
      tokenizer: model.tokenizer,
      adapter: model.adapter,
      lm: new PlainLM(model.lm),
      text: model.text,
      imageSize: S,
    });
    const viaRecompute = await twin.caption(images, { maxNewTokens: 6 });
    expect(viaRecompute).toEqual(viaCache);
    expect(viaCache).toHaveLength(2);
    model.dispose();
    twin.dispose();
  });

  it('stops a caption at any of stopTokens (not included), on both decoding paths, and rejects ids outside the vocabulary', async () => {
    const model = build('projector');
    const twin = new ETTModel({
      tokenizer: model.tokenizer,
      adapter: model.adapter,
      lm: new PlainLM(model.lm),
      text: model.text,
      imageSize: S,
    });
    const full = await model.caption(images, { maxNewTokens: 8 });
    // The byte tokenizer: a caption's characters are its token ids (bytes). Stop at the third byte of the first caption.
    const bytes = Array.from(new TextEncoder().encode(full[0]!));
    expect(bytes.length).toBeGreaterThanOrEqual(3);
    const stop = model.text.encode(full[0]!)[2]!;
    const cut = (c: string) => {
      const ids = model.text.encode(c);
      const at = ids.indexOf(stop);
      return at < 0 ? c : model.text.decode(ids.slice(0, at));
    };
    for (const m of [model, twin]) {
      const stopped = await m.caption(images, { maxNewTokens: 8, stopTokens: [stop] });
      expect(stopped).toEqual(full.map(cut));
      expect(stopped[0]!.length).toBeLessThan(full[0]!.length);
    }
    await expect(model.caption(images, { stopTokens: [model.lm.vocabSize] })).rejects.toThrow(/stopTokens must be token ids in \[0, \d+\)/);
    await expect(model.caption(images, { stopTokens: [1.5] })).rejects.toThrow(/stopTokens must be token ids/);
    model.dispose();
    twin.dispose();
  });

  it('trains generation on code targets and samples decodable images', async () => {
    const model = build('projector', 32);
    const prompts = [model.text.encode('red'), model.text.encode('blue')];
    const codes = [Array.from({ length: 16 }, (_, i) => i % 32), Array.from({ length: 16 }, (_, i) => (3 * i) % 32)];
    const out = model.generationForward(prompts, codes);
    expect(out.logits.shape).toEqual([2, prompts[1].length + 2 + 15, 32]);
    const t = out.targets.arraySync();
    expect(t[1].filter((v) => v !== IGNORE_INDEX)).toEqual(codes[1]);
    tf.dispose([out.logits, out.targets]);
    const gen = await model.generateImages(['red', 'blue!'], { seed: 1 });
    expect(gen.images.shape).toEqual([2, S, S, 3]);
    expect(gen.codes.every((r) => r.length === 16 && r.every((c) => c >= 0 && c < 32))).toBe(true);
    gen.images.dispose();
    model.dispose();
  });

  it('rejects parts that do not fit and malformed images with actionable errors', () => {
    const text = new ByteTokenizer();
    const tokenizer = tinyTokenizer();
    const lm = tinyLM(text);
    const wrong = createVisualAdapter({ kind: 'projector', inputDim: tokenizer.codeDim, outputDim: 8 });
    expect(() => new ETTModel({ tokenizer, adapter: wrong, lm, text, imageSize: S })).toThrow(
      /adapter outputs 8 features but the LM hidden size is 16/,
    );
    const noBoi = new ByteTokenizer({ specialTokens: ['<pad>', '<bos>', '<eos>'] });
    wrong.dispose();
    const adapter = createVisualAdapter({ kind: 'projector', inputDim: tokenizer.codeDim, outputDim: lm.hiddenSize });
    expect(() => new ETTModel({ tokenizer, adapter, lm, text: noBoi, imageSize: S })).toThrow(/lacks special token\(s\) boi, eoi/);
    expect(() => new ETTModel({ tokenizer, adapter, lm, text, imageSize: 18 })).toThrow(/multiple of the tokenizer's downsample factor 4/);
    const model = new ETTModel({ tokenizer, adapter, lm, text, imageSize: S });
    const bad = tf.zeros([1, 8, 8, 3]) as tf.Tensor4D;
    expect(() => model.captionForward(bad, [[1]])).toThrow(/expected images \[B, 16, 16, 3\]/);
    expect(() => model.captionForward(images, [[1]])).toThrow(/2 images but 1 captions/);
    expect(() => model.captionForward(images, [new Array(200).fill(65), [65]])).toThrow(/sample 0: .*context allows 96/);
    bad.dispose();
    model.dispose();
  });

  describe('savePretrained / fromPretrained', () => {
    const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'ett-saved-'));
    const logitsOf = (model: ETTModel, captions: number[][]) => {
      const o = model.captionForward(images, captions);
      const values = o.logits.arraySync();
      tf.dispose([o.logits, o.targets, o.tokens.quantized, o.tokens.indices, ...Object.values(o.tokens.losses)]);
      return values;
    };

    it('round-trips a model: same logits, captions and generated codes, each part in its own saved form', async () => {
      const model = build('projector', 32, 'qwen2');
      const dir = path.join(tmp(), 'model');
      try {
        await model.savePretrained(dir, { source: { stage: 'understanding', arm: 'ett' } });
        const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
        expect(config).toEqual({
          model_type: 'ett',
          format_version: 1,
          image_size: S,
          special_tokens: { bos: 257, eos: 258, pad: 256, boi: 259, eoi: 260 },
          adapter_kind: 'projector',
          source: { stage: 'understanding', arm: 'ett' },
        });
        expect(fs.readdirSync(dir).sort()).toEqual(['adapter', 'config.json', 'lm', 'vision_tokenizer']);
        // The LM directory is an HF one: HF config and tensor names, Linear weights [out, in].
        const hf = JSON.parse(fs.readFileSync(path.join(dir, 'lm', 'config.json'), 'utf8'));
        expect(hf.model_type).toBe('qwen2');
        const st = await loadSafetensorsFile(path.join(dir, 'lm', 'model.safetensors'));
        expect(st.tensors['model.layers.0.self_attn.q_proj.weight']?.shape).toEqual([16, 16]);
        expect(st.tensors['model.layers.0.mlp.up_proj.weight']?.shape).toEqual([32, 16]);
        expect(fs.existsSync(path.join(dir, 'lm', 'byte_tokenizer.json'))).toBe(true);
        expect(fs.existsSync(path.join(dir, 'vision_tokenizer', 'model.safetensors'))).toBe(true);
        expect(fs.existsSync(path.join(dir, 'adapter', 'model.safetensors'))).toBe(true);
        expect(fs.readdirSync(path.dirname(dir))).toEqual(['model']); // no temporary directory left behind

        const loaded = await ETTModel.fromPretrained(dir);
        try {
          const captions = [model.text.encode('ab'), model.text.encode('c')];
          expect(logitsOf(loaded, captions)).toEqual(logitsOf(model, captions));
          expect(await loaded.caption(images, { maxNewTokens: 6 })).toEqual(await model.caption(images, { maxNewTokens: 6 }));
          const a = await model.generateImages(['red'], { seed: 3 });
          const b = await loaded.generateImages(['red'], { seed: 3 });
          expect(b.codes).toEqual(a.codes);
          expect(b.images.arraySync()).toEqual(a.images.arraySync());
          tf.dispose([a.images, b.images]);
          expect(loaded.discriminator).toBeUndefined();
          expect((await ETTModel.readPretrainedConfig(dir)).source).toEqual({ stage: 'understanding', arm: 'ett' });
        } finally {
          loaded.dispose();
        }
      } finally {
        model.dispose();
      }
    });

    it('round-trips the index adapter (frozen-index) and replaces a saved model in place', async () => {
      const model = build('index', 0, 'qwen2');
      const other = build('projector', 0, 'qwen2');
      const dir = path.join(tmp(), 'model');
      try {
        await other.savePretrained(dir);
        await model.savePretrained(dir);
        expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).adapter_kind).toBe('index');
        const loaded = await ETTModel.fromPretrained(dir);
        const captions = [model.text.encode('x'), model.text.encode('yz')];
        expect(logitsOf(loaded, captions)).toEqual(logitsOf(model, captions));
        loaded.dispose();
        expect(fs.readdirSync(path.dirname(dir))).toEqual(['model']);
      } finally {
        model.dispose();
        other.dispose();
      }
    });

    it('names the file at fault and what to do for a missing, foreign, corrupt or mismatched directory, and leaks nothing', async () => {
      const model = build('projector', 0, 'qwen2');
      const root = tmp();
      const dir = path.join(root, 'model');
      try {
        await expect(ETTModel.fromPretrained(path.join(root, 'nope'))).rejects.toThrow(
          new RegExp(
            `cannot read ${path.join(root, 'nope', 'config.json')}.*is not a saved ETT model: write one with model.savePretrained`,
          ),
        );
        await model.savePretrained(dir);
        const fresh = async () => {
          fs.rmSync(dir, { recursive: true });
          await model.savePretrained(dir);
        };
        await expect(ETTModel.fromPretrained(path.join(dir, 'lm'))).rejects.toThrow(/has model_type "qwen2", expected "ett"/);

        fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "ett",');
        await expect(ETTModel.fromPretrained(dir)).rejects.toThrow(/config.json is not valid JSON/);
        await fresh();
        const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
        fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, format_version: 2 }));
        await expect(ETTModel.fromPretrained(dir)).rejects.toThrow(/format_version 2; this ettjs reads versions 1 to 1 .*upgrade ettjs/);
        fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, special_tokens: { ...cfg.special_tokens, boi: 3 } }));
        await expect(ETTModel.fromPretrained(dir)).rejects.toThrow(
          /special tokens in .*config.json .* differ from the text tokenizer in .*lm \(boi 259\)/,
        );
        fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, adapter_kind: 'index' }));
        await expect(ETTModel.fromPretrained(dir)).rejects.toThrow(/names a "index" adapter but .*adapter holds a "projector" one/);
        await fresh();

        fs.rmSync(path.join(dir, 'lm', 'model.safetensors'));
        await expect(ETTModel.fromPretrained(dir)).rejects.toThrow(
          new RegExp(`cannot load the LM from ${path.join(dir, 'lm')}: .*model.safetensors.*incomplete or corrupt; write it again`),
        );
        await fresh();
        const weights = path.join(dir, 'adapter', 'model.safetensors');
        fs.writeFileSync(weights, fs.readFileSync(weights).subarray(0, 40)); // truncated
        await expect(ETTModel.fromPretrained(dir)).rejects.toThrow(
          new RegExp(`cannot load the adapter from ${path.join(dir, 'adapter')}: ${weights}: .*incomplete or corrupt`),
        );
        await fresh();
        fs.rmSync(path.join(dir, 'lm', 'byte_tokenizer.json'));
        await expect(ETTModel.fromPretrained(dir)).rejects.toThrow(/cannot load the text tokenizer from .*neither tokenizer.json/);
        await fresh();
        fs.rmSync(path.join(dir, 'vision_tokenizer', 'config.json'));
        await expect(ETTModel.fromPretrained(dir)).rejects.toThrow(
          /cannot load the vision tokenizer from .*vision_tokenizer: .*config.json/,
        );

        // Saving never clobbers a directory that is not a saved model, nor a model with a part it cannot save.
        const foreign = path.join(root, 'photos');
        fs.mkdirSync(foreign);
        fs.writeFileSync(path.join(foreign, 'cat.png'), 'x');
        await expect(model.savePretrained(foreign)).rejects.toThrow(
          /photos exists and is not a saved ETT model \(it holds cat.png\); choose another directory/,
        );
        expect(fs.readdirSync(foreign)).toEqual(['cat.png']);
        const plain = new ETTModel({
          tokenizer: model.tokenizer,
          adapter: model.adapter,
          lm: new PlainLM(model.lm),
          text: model.text,
          imageSize: S,
        });
        await expect(plain.savePretrained(path.join(root, 'plain'))).rejects.toThrow(ETTModelError);
        await expect(plain.savePretrained(path.join(root, 'plain'))).rejects.toThrow(/the LM is a PlainLM, not an AutoregressiveLM/);
        expect(fs.existsSync(path.join(root, 'plain'))).toBe(false);
      } finally {
        model.dispose();
      }
    });
  });
});
