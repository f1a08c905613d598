import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDictError, type VisionTokenizer } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { VQInputError } from './errors';
import { DEFAULT_VQ_TOKENIZER_CONFIG, VQ_TOKENIZER_TINY, VQTokenizer, type VQTokenizerConfig } from './tokenizer';

/** A micro config (8×8 images, ×2) so cpu tests stay fast. */
const MICRO: Partial<VQTokenizerConfig> = {
  ...VQ_TOKENIZER_TINY,
  ch: 8,
  chMult: [1, 2],
  zChannels: 8,
  codeDim: 8,
  codebookSize: 32,
  normGroups: 4,
};

/** Reads a tensor's values and disposes it. */
function readOnce(t: tf.Tensor): Float32Array {
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
}

function disposeOut(o: { quantized: tf.Tensor; indices: tf.Tensor; losses: Record<string, tf.Tensor> }) {
  tf.dispose([o.quantized, o.indices, ...Object.values(o.losses)]);
}

describe('VQTokenizer', () => {
  let model: VQTokenizer;
  beforeAll(() => {
    model = new VQTokenizer({ ...MICRO, attnLevels: [1], midAttention: true });
  });
  afterAll(() => model.dispose());

  it('implements VisionTokenizer: shapes, dtypes, raster indices, decode paths agree', async () => {
    const tok: VisionTokenizer = model;
    expect([tok.codebookSize, tok.codeDim, tok.downsample]).toEqual([32, 8, 2]);
    const x = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
    const out = tok.encode(x);
    expect(out.quantized.shape).toEqual([2, 4, 4, 8]);
    expect(out.indices.shape).toEqual([2, 16]);
    expect(out.indices.dtype).toBe('int32');
    expect(Object.keys(out.losses).sort()).toEqual(['entropy', 'quant']);
    expect(out.stats.usage).toBeGreaterThan(0);
    expect(out.stats.perplexity).toBeGreaterThanOrEqual(1);
    // quantized[b, i, j] is the code of indices[b, i·w + j]
    const emb = tok.embedIndices(out.indices);
    expect(emb.shape).toEqual([2, 16, 8]);
    expect(Array.from(await emb.data())).toEqual(Array.from(await out.quantized.data()));
    const a = tok.decode(out.quantized);
    const b = tok.decodeIndices(out.indices, [4, 4]);
    expect(a.shape).toEqual([2, 8, 8, 3]);
    expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
    tf.dispose([x, emb, a, b]);
    disposeOut(out);
    model.update();
  });

  it('eval encodes mutate nothing', async () => {
    const x = tf.randomUniform([1, 8, 8, 3], -1, 1, 'float32', 2) as tf.Tensor4D;
    const usage = model.quantize.usage;
    model.eval();
    disposeOut(model.encode(x));
    expect(model.quantize.pendingBatches).toBe(0);
    expect(model.quantize.usage).toBe(usage);
    model.train();
    disposeOut(model.encode(x, { training: false }));
    expect(model.quantize.pendingBatches).toBe(0);
    x.dispose();
  });

  it('rejects bad input with errors that say what to do', () => {
    const cases: [tf.Tensor, RegExp][] = [
      [tf.zeros([8, 8, 3]), /rank 3/],
      [tf.zeros([1, 3, 8, 8]), /looks like NCHW/],
      [tf.zeros([1, 8, 8, 1]), /expected 3 channels/],
      [tf.zeros([1, 7, 8, 3]), /7×8 is not divisible by the downsample factor 2/],
      [tf.fill([1, 8, 8, 3], 2), /span \[2, 2\], expected \[-1, 1\]/],
      [tf.fill([1, 8, 8, 3], Number.NaN), /NaN/],
      [tf.zeros([1, 8, 8, 3], 'int32'), /float32/],
    ];
    for (const [x, re] of cases) {
      expect(() => model.encode(x as tf.Tensor4D)).toThrow(VQInputError);
      expect(() => model.encode(x as tf.Tensor4D)).toThrow(re);
    }
    tf.dispose(cases.map(([x]) => x));
    const z = tf.zeros([1, 4, 4, 5]) as tf.Tensor4D;
    expect(() => model.decode(z)).toThrow(/expected latents \[B, h, w, 8\]/);
    const idx = tf.zeros([1, 15], 'int32') as tf.Tensor2D;
    expect(() => model.decodeIndices(idx, [4, 4])).toThrow(/\[B, 16\]/);
    tf.dispose([z, idx]);
    expect(() => new VQTokenizer({ ...MICRO, normGroups: 3 })).toThrow(/normGroups 3/);
    expect(() => new VQTokenizer({ ...MICRO, attnLevels: [5] })).toThrow(/attnLevels/);
  });

  it("rangeCheck 'warn' warns once and encodes", () => {
    const m = new VQTokenizer({ ...MICRO, rangeCheck: 'warn' });
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const x = tf.fill([1, 8, 8, 3], 1.5) as tf.Tensor4D;
    disposeOut(m.encode(x, { training: false }));
    disposeOut(m.encode(x, { training: false }));
    expect(warn).toHaveBeenCalledTimes(1);
    warn.mockRestore();
    x.dispose();
    m.dispose();
  });

  it('the paper config has the paper shape (without allocating it)', () => {
    const c = DEFAULT_VQ_TOKENIZER_CONFIG;
    expect([c.ch, c.chMult, c.numResBlocks, c.codeDim, c.codebookSize, 2 ** (c.chMult.length - 1)]).toEqual([
      128,
      [1, 1, 2, 2, 4],
      4,
      256,
      131_072,
      16,
    ]);
    expect(c.quantizer).toEqual({ kind: 'ibq' });
  });

  it('caption-style gradients reach the encoder and every codebook row (IBQ)', async () => {
    const x = tf.randomUniform([1, 8, 8, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    const r = tf.randomNormal([1, 4, 4, 8], 0, 1, 'float32', 4);
    const vars = model.namedTrainableVariables();
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(model.encode(x, { training: false }).quantized, r)) as tf.Scalar,
      vars.map(([, v]) => v),
    );
    const norm = async (name: string) => {
      const v = vars.find(([n]) => n === name)?.[1] as tf.Variable;
      const g = grads[v.name];
      return g ? readOnce(tf.tidy(() => tf.norm(g)))[0] : 0;
    };
    expect(await norm('encoder.conv_in.weight')).toBeGreaterThan(0);
    const ge = grads[model.quantize.embedding.name];
    const rowNorms = readOnce(tf.tidy(() => tf.norm(ge, 'euclidean', 1)));
    expect(Math.min(...rowNorms)).toBeGreaterThan(0);
    expect(await norm('decoder.conv_out.weight')).toBe(0); // the decoder is not on this path
    tf.dispose([x, r, value, ...Object.values(grads)]);
  });

  it('savePretrained / fromPretrained round-trip exactly; mismatches give clear errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vqtok-'));
    try {
      await model.savePretrained(dir);
      const loaded = await VQTokenizer.fromPretrained(dir);
      expect(loaded.config).toEqual(model.config);
      const a = model.stateDict();
      const b = loaded.stateDict();
      expect(Object.keys(b)).toEqual(Object.keys(a));
      for (const k of Object.keys(a)) expect(Array.from(await b[k].data())).toEqual(Array.from(await a[k].data()));
      loaded.dispose();
      // weights from another shape
      await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'ettjs_vq_tokenizer', ...model.config, codeDim: 4 }));
      await expect(VQTokenizer.fromPretrained(dir)).rejects.toThrow(StateDictError);
      await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'llama' }));
      await expect(VQTokenizer.fromPretrained(dir)).rejects.toThrow(/model_type "llama"/);
      await writeFile(join(dir, 'config.json'), '{not json');
      await expect(VQTokenizer.fromPretrained(dir)).rejects.toThrow(/not valid JSON/);
      await expect(VQTokenizer.fromPretrained(join(dir, 'nope'))).rejects.toThrow(/cannot read/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
