import { StateDictError } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoregressiveLM, LMInputError } from './autoregressive_lm';
import type { LMConfig } from './config';

const TINY: Partial<LMConfig> = {
  architecture: 'llama',
  vocabSize: 23,
  hiddenSize: 16,
  intermediateSize: 24,
  numLayers: 2,
  numHeads: 4,
  numKVHeads: 2,
  maxPositionEmbeddings: 32,
  ropeTheta: 10000,
  qkvBias: true,
  outputBias: true,
  mlpBias: true,
  tieWordEmbeddings: false,
  initializerRange: 0.4,
};

async function values(t: tf.Tensor): Promise<Float32Array> {
  const v = (await t.data()) as Float32Array;
  t.dispose();
  return v;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Random non-zero biases and norm weights, so the tests see them (init sets them to 0 and 1). */
function perturb(lm: AutoregressiveLM, seed: number): void {
  let s = seed;
  for (const [name, v] of lm.namedParameters()) {
    if (name.endsWith('bias') || name.endsWith('norm.weight') || name.endsWith('layernorm.weight')) {
      tf.tidy(() => v.assign(tf.add(v, tf.randomNormal(v.shape, 0, 0.2, 'float32', s++))));
    }
  }
}

async function checkGradients(lm: AutoregressiveLM, ids: number[], checked: string[]): Promise<void> {
  const inputIds = tf.tensor2d([ids.slice(0, 6)], [1, 6], 'int32');
  const targets = tf.tidy(() => tf.oneHot(tf.tensor1d(ids.slice(1, 7), 'int32'), 23));
  const loss = () =>
    tf.tidy(() => {
      const { logits } = lm.forwardIds({ inputIds });
      return tf.sum(tf.mul(targets, tf.neg(tf.logSoftmax(tf.reshape(logits, [6, 23]))))) as tf.Scalar;
    });
  const vars = Object.fromEntries(lm.namedParameters());
  const { grads, value } = tf.variableGrads(
    loss,
    checked.map((n) => vars[n]),
  );
  value.dispose();
  const eps = 1e-2;
  for (const name of checked) {
    const v = vars[name];
    const g = await values(grads[v.name]);
    for (const flat of [0, 3, Math.floor(v.size / 2)]) {
      const bump = (delta: number) =>
        tf.tidy(() => v.assign(tf.add(v, tf.reshape(tf.mul(tf.oneHot(tf.tensor1d([flat], 'int32'), v.size), delta), v.shape))));
      bump(eps);
      const plus = await values(loss());
      bump(-2 * eps);
      const minus = await values(loss());
      bump(eps);
      const fd = (plus[0] - minus[0]) / (2 * eps);
      expect(Math.abs(fd - g[flat]), `${name}[${flat}] fd ${fd} vs grad ${g[flat]}`).toBeLessThan(2e-3 + 2e-2 * Math.abs(fd));
    }
  }
  tf.dispose([inputIds, targets]);
}

describe('AutoregressiveLM', () => {
  let lm: AutoregressiveLM;
  const ids = [
    [3, 7, 1, 22, 5, 9, 0, 14],
    [8, 8, 2, 19, 6, 11, 4, 13],
  ];
  beforeAll(() => {
    lm = new AutoregressiveLM(TINY, { seed: 1 });
    perturb(lm, 100);
  });
  afterAll(() => lm.dispose());

  it('names its parameters with the HF tensor names', () => {
    const names = lm.namedParameters().map(([n]) => n);
    expect(names).toContain('model.embed_tokens.weight');
    expect(names).toContain('model.layers.1.self_attn.q_proj.weight');
    expect(names).toContain('model.layers.1.self_attn.o_proj.bias');
    expect(names).toContain('model.layers.0.mlp.gate_proj.bias');
    expect(names).toContain('model.layers.0.post_attention_layernorm.weight');
    expect(names).toContain('model.norm.weight');
    expect(names).toContain('lm_head.weight');
    const tied = new AutoregressiveLM({ ...TINY, architecture: 'qwen2', outputBias: false, mlpBias: false, tieWordEmbeddings: true });
    const tiedNames = tied.namedParameters().map(([n]) => n);
    expect(tiedNames).not.toContain('lm_head.weight');
    expect(tiedNames).not.toContain('model.layers.0.self_attn.o_proj.bias');
    expect(tiedNames).toContain('model.layers.0.self_attn.k_proj.bias');
    tied.dispose();
  });

  it('returns logits [B, T, V] and hidden [B, T, C]; logits "last" equals the last row', async () => {
    const { logits, hidden } = tf.tidy(() => lm.forwardIds({ inputIds: tf.tensor2d(ids, [2, 8], 'int32') }));
    expect(logits.shape).toEqual([2, 8, 23]);
    expect(hidden.shape).toEqual([2, 8, 16]);
    const last = tf.tidy(() => lm.forwardIds({ inputIds: tf.tensor2d(ids, [2, 8], 'int32'), logits: 'last' }));
    expect(last.logits.shape).toEqual([2, 1, 23]);
    const sliced = tf.slice(logits, [0, 7, 0], [2, 1, 23]);
    expect(maxDiff(await values(last.logits), await values(sliced))).toBeLessThan(1e-6);
    tf.dispose([logits, hidden, last.hidden]);
  });

  it('cached step-by-step decoding gives the same logits as one full forward', async () => {
    const full = await values(tf.tidy(() => lm.forwardIds({ inputIds: tf.tensor2d(ids, [2, 8], 'int32') }).logits));
    const cache = lm.newCache();
    const parts: Float32Array[] = [];
    // prefill 3 tokens, then one token at a time
    for (const [from, to] of [
      [0, 3],
      [3, 4],
      [4, 5],
      [5, 6],
      [6, 7],
      [7, 8],
    ]) {
      const chunk = ids.map((r) => r.slice(from, to));
      parts.push(await values(tf.tidy(() => lm.forwardIds({ inputIds: tf.tensor2d(chunk, [2, to - from], 'int32'), cache }).logits)));
    }
    expect(cache.length).toBe(8);
    cache.dispose();
    // reassemble [B, T, V] from the chunks
    const v = 23;
    const stitched = new Float32Array(2 * 8 * v);
    let t0 = 0;
    for (const p of parts) {
      const len = p.length / (2 * v);
      for (let b = 0; b < 2; b++) stitched.set(p.subarray(b * len * v, (b + 1) * len * v), (b * 8 + t0) * v);
      t0 += len;
    }
    expect(maxDiff(stitched, full)).toBeLessThan(1e-5);
  });

  it('masks left padding: real positions match the unpadded sequence (RoPE is relative)', async () => {
    const row = [4, 9, 2, 17, 5];
    const plain = await values(tf.tidy(() => lm.forwardIds({ inputIds: tf.tensor2d([row], [1, 5], 'int32') }).logits));
    const padded = await values(
      tf.tidy(
        () =>
          lm.forwardIds({
            inputIds: tf.tensor2d([[0, 0, 0, ...row]], [1, 8], 'int32'),
            attentionMask: tf.tensor2d([[0, 0, 0, 1, 1, 1, 1, 1]], [1, 8]),
          }).logits,
      ),
    );
    expect(maxDiff(padded.subarray(3 * 23), plain)).toBeLessThan(1e-5);
    // without the mask the pads are attended and the logits change
    const unmasked = await values(tf.tidy(() => lm.forwardIds({ inputIds: tf.tensor2d([[0, 0, 0, ...row]], [1, 8], 'int32') }).logits));
    expect(maxDiff(unmasked.subarray(3 * 23), plain)).toBeGreaterThan(1e-3);
  });

  it('gradients of the LM loss match central finite differences', async () => {
    await checkGradients(lm, ids[0], [
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.1.self_attn.k_proj.bias',
      'model.layers.0.mlp.up_proj.weight',
      'model.layers.1.input_layernorm.weight',
      'model.embed_tokens.weight',
      'lm_head.weight',
    ]);
  });

  it('gradients match finite differences with tied embeddings (the table is used twice)', async () => {
    const tied = new AutoregressiveLM(
      { ...TINY, architecture: 'qwen2', outputBias: false, mlpBias: false, tieWordEmbeddings: true },
      { seed: 5 },
    );
    perturb(tied, 200);
    await checkGradients(tied, ids[1], ['model.embed_tokens.weight', 'model.layers.0.self_attn.v_proj.bias', 'model.norm.weight']);
    tied.dispose();
  });

  it('a training step and a forward leak no tensors', () => {
    const inputIds = tf.tensor2d(ids, [2, 8], 'int32');
    const step = () => {
      const { grads, value } = tf.variableGrads(() => tf.tidy(() => tf.mean(lm.forwardIds({ inputIds }).logits) as tf.Scalar));
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    step();
    tf.tidy(() => {
      lm.forwardIds({ inputIds });
    });
    expect(tf.memory().numTensors).toBe(before);
    inputIds.dispose();
  });

  it('rejects bad inputs with errors that say what was expected', () => {
    const bad = (fn: () => unknown, pattern: RegExp) =>
      expect(() =>
        tf.tidy(() => {
          fn();
        }),
      ).toThrow(pattern);
    bad(() => lm.embed(tf.tensor2d([[1, 23]], [1, 2], 'int32')), /token id 23 .*outside the vocabulary \[0, 23\)/);
    bad(() => lm.embed(tf.tensor2d([[-1]], [1, 1], 'int32')), /outside the vocabulary/);
    expect(() => tf.tidy(() => void lm.embed(tf.tensor2d([[99]], [1, 1], 'int32')))).toThrow(LMInputError);
    bad(() => lm.embed(tf.tensor2d([[1.5]], [1, 1])), /token id 1.5/);
    bad(() => lm.forward({ inputsEmbeds: tf.zeros([1, 3, 8]) as tf.Tensor3D }), /inputsEmbeds must be \[B, T, 16\]/);
    bad(() => lm.forward({ inputsEmbeds: tf.zeros([1, 33, 16]) as tf.Tensor3D }), /33 .* exceeds maxPositionEmbeddings 32/);
    bad(
      () => lm.forward({ inputsEmbeds: tf.zeros([1, 3, 16]) as tf.Tensor3D, attentionMask: tf.ones([1, 4]) as tf.Tensor2D }),
      /attentionMask must be \[1, 3\]/,
    );
    bad(() => lm.forward({ inputsEmbeds: tf.zeros([1, 3, 16]) as tf.Tensor3D, positionIds: [[0, 1]] }), /positionIds must be 1 rows of 3/);
    bad(() => lm.visualLogits(tf.zeros([1, 2, 16]) as tf.Tensor3D), /no visual head/);
    const cache = lm.newCache();
    tf.tidy(() => {
      lm.forward({ inputsEmbeds: tf.zeros([2, 30, 16]) as tf.Tensor3D, cache });
    });
    bad(() => lm.forward({ inputsEmbeds: tf.zeros([1, 1, 16]) as tf.Tensor3D, cache }), /batch size 1 differs from the cache's 2/);
    bad(() => lm.forward({ inputsEmbeds: tf.zeros([2, 3, 16]) as tf.Tensor3D, cache }), /33 \(30 cached \+ 3 new\) exceeds/);
    cache.dispose();
    expect(() => new AutoregressiveLM({ ...TINY, numKVHeads: 3 })).toThrow(/numKVHeads \(3\) must divide numHeads \(4\)/);
    expect(() => new AutoregressiveLM({ ...TINY, hiddenSize: 12, numHeads: 8 })).toThrow(/head dim must be an even integer/);
  });

  it('visual head maps hidden states to K code logits', () => {
    const v = new AutoregressiveLM({ ...TINY, visualVocabSize: 7 }, { seed: 2 });
    expect(v.namedParameters().map(([n]) => n)).toContain('visual_head.weight');
    const out = tf.tidy(() => v.visualLogits(v.forwardIds({ inputIds: tf.tensor2d([[1, 2, 3]], [1, 3], 'int32') }).hidden));
    expect(out.shape).toEqual([1, 3, 7]);
    out.dispose();
    v.dispose();
  });

  it('resizeTokenEmbeddings keeps old rows, initialises new rows to their mean and keeps old logits', async () => {
    const grown = lm.resizeTokenEmbeddings(26);
    expect(grown.vocabSize).toBe(26);
    const oldE = await values(tf.clone(lm.model.embed_tokens.weight));
    const newE = await values(tf.clone(grown.model.embed_tokens.weight));
    expect(maxDiff(newE.subarray(0, 23 * 16), oldE)).toBe(0);
    const mean = await values(tf.mean(lm.model.embed_tokens.weight, 0));
    for (let r = 23; r < 26; r++) expect(maxDiff(newE.subarray(r * 16, (r + 1) * 16), mean)).toBeLessThan(1e-6);
    const inputIds = () => tf.tensor2d([ids[0]], [1, 8], 'int32');
    const a = await values(tf.tidy(() => lm.forwardIds({ inputIds: inputIds() }).logits));
    const b = await values(tf.tidy(() => tf.slice(grown.forwardIds({ inputIds: inputIds() }).logits, [0, 0, 0], [1, 8, 23])));
    expect(maxDiff(a, b)).toBeLessThan(1e-5);
    grown.dispose();
    const shrunk = lm.resizeTokenEmbeddings(20);
    expect(shrunk.model.embed_tokens.weight.shape).toEqual([20, 16]);
    expect(shrunk.lm_head?.weight.shape).toEqual([16, 20]);
    shrunk.dispose();
  });

  it('loadHFStateDict reports missing, unexpected and mis-shaped tensors by HF name', () => {
    const other = new AutoregressiveLM(TINY);
    const dict = lm.hfStateDict();
    expect(dict['model.layers.0.self_attn.q_proj.weight'].shape).toEqual([16, 16]);
    expect(dict['model.layers.0.mlp.gate_proj.weight'].shape).toEqual([24, 16]); // HF [out, in]
    const broken: Record<string, tf.Tensor> = { ...dict, 'model.extra.weight': tf.zeros([2]), 'lm_head.weight': tf.zeros([16, 23]) };
    delete broken['model.norm.weight'];
    let err: unknown;
    try {
      other.loadHFStateDict(broken);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/missing tensor "model.norm.weight"/);
    expect(msg).toMatch(/unexpected tensor "model.extra.weight"/);
    expect(msg).toMatch(/"lm_head.weight": shape mismatch, expected \[23,16\], got \[16,23\]/);
    tf.dispose([broken['model.extra.weight'], broken['lm_head.weight']]);
    other.loadHFStateDict(dict);
    tf.dispose(Object.values(dict));
    other.dispose();
  });
});
