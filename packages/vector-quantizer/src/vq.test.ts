import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { asVariable, expectClose, reference } from '../test/helpers';
import { VectorQuantizer } from './vq';

const c = reference.vq[0];

function makeVQ(extra: Partial<ConstructorParameters<typeof VectorQuantizer>[0]> = {}) {
  const q = new VectorQuantizer({ codebookSize: c.k, codeDim: c.d, ...extra });
  tf.tidy(() => q.embedding.assign(tf.tensor2d(c.codebook, [c.k, c.d])));
  return q;
}

/** Gradients of `fn(result, w)` w.r.t. z and the codebook. */
async function grads(q: VectorQuantizer, fn: (r: ReturnType<VectorQuantizer['quantize']>, w: tf.Tensor) => tf.Tensor) {
  const z = asVariable(tf.tensor2d(c.z, [c.n, c.d]));
  const w = tf.tensor2d(c.w, [c.n, c.d]);
  const { grads: g, value } = tf.variableGrads(() => fn(q.quantize(z, { training: false }), w) as tf.Scalar, [z, q.embedding]);
  const out = { gz: await g[z.name].data(), ge: await g[q.embedding.name].data() };
  tf.dispose([z, w, value, ...Object.values(g)]);
  return out;
}

describe('VectorQuantizer (classic VQ)', () => {
  it('matches the PyTorch reference: nearest code, loss terms, gradients', async () => {
    const q = makeVQ();
    const zin = tf.tensor2d(c.z, [c.n, c.d]);
    const r = q.quantize(zin, { training: false });
    zin.dispose();
    expect(Array.from(await r.indices.data())).toEqual(c.indices);
    expectClose(await r.quantized.data(), c.quantized, 1e-6);
    expectClose(await r.losses.codebook.data(), [c.codebookLoss], 1e-5);
    expectClose(await r.losses.commitment.data(), [c.commitmentLoss], 1e-5);
    expect(r.lossWeights).toEqual({ codebook: 1, commitment: 0.25 });
    tf.dispose([r.quantized, r.indices, ...Object.values(r.losses)]);
    const g = await grads(q, (res, w) =>
      tf.addN([tf.sum(tf.mul(res.quantized, w)), res.losses.codebook, tf.mul(res.losses.commitment, 0.25)]),
    );
    expectClose(g.gz, c.gradZ, 1e-4);
    expectClose(g.ge, c.gradCodebook, 1e-4);
    q.dispose();
  });

  it('the straight-through estimator passes the decoder gradient to the encoder unchanged, and none to the codebook', async () => {
    const q = makeVQ();
    const g = await grads(q, (res, w) => tf.sum(tf.mul(res.quantized, w)));
    expectClose(g.gz, c.w.map(Math.fround), 0); // bit-exact: the float32 decoder gradient itself
    expect(Array.from(g.ge).every((v) => v === 0)).toBe(true);
    q.dispose();
  });

  it('computes its loss terms before the substitution (codebook term trains only codes, commitment only the encoder)', async () => {
    const q = makeVQ();
    const book = await grads(q, (res) => res.losses.codebook);
    expect(Array.from(book.gz).every((v) => v === 0)).toBe(true);
    // ∂/∂e_k mean((e_k − z)²) over the tokens that chose k: 2 Σ (e_k − z_i) / (N·D)
    const expected = new Float64Array(c.k * c.d);
    c.indices.forEach((k: number, i: number) => {
      for (let j = 0; j < c.d; j++) expected[k * c.d + j] += (2 * (c.codebook[k * c.d + j] - c.z[i * c.d + j])) / (c.n * c.d);
    });
    expectClose(book.ge, expected, 1e-5);
    const commit = await grads(q, (res) => res.losses.commitment);
    expect(Array.from(commit.ge).every((v) => v === 0)).toBe(true);
    expect(Array.from(commit.gz).some((v) => v !== 0)).toBe(true);
    q.dispose();
  });

  it('only the selected codebook rows get gradient', async () => {
    const q = makeVQ();
    const g = await grads(q, (res) => res.losses.codebook);
    const selected = new Set<number>(c.indices);
    expect(selected.size).toBeLessThan(c.k);
    for (let k = 0; k < c.k; k++) {
      const nonzero = Array.from(g.ge.subarray(k * c.d, (k + 1) * c.d)).some((v) => v !== 0);
      expect(nonzero, `row ${k}`).toBe(selected.has(k));
    }
    q.dispose();
  });

  it('legacy β placement and EMA change the loss weights', () => {
    const q1 = new VectorQuantizer({ codebookSize: 4, codeDim: 2, betaPlacement: 'codebook', beta: 0.5 });
    const q2 = new VectorQuantizer({ codebookSize: 4, codeDim: 2, codebookUpdate: { kind: 'ema', decay: 0.9 } });
    const z = tf.zeros([3, 2]);
    for (const [q, weights] of [
      [q1, { codebook: 0.5, commitment: 1 }],
      [q2, { codebook: 0, commitment: 0.25 }],
    ] as const) {
      const r = q.quantize(z, { training: false });
      expect(r.lossWeights).toEqual(weights);
      tf.dispose([r.quantized, r.indices, ...Object.values(r.losses)]);
    }
    expect(q2.trainableVariables()).toHaveLength(0);
    z.dispose();
    q1.dispose();
    q2.dispose();
  });

  it('nearest code under l2 normalisation is the most cosine-similar code', async () => {
    const q = new VectorQuantizer({ codebookSize: 3, codeDim: 2, l2Normalize: true });
    tf.tidy(() =>
      q.embedding.assign(
        tf.tensor2d([
          [10, 0],
          [0, 1],
          [-1, 0],
        ]),
      ),
    );
    const z = tf.tensor2d([
      [0.1, 1],
      [5, 0.2],
      [-3, -0.1],
    ]);
    const r = q.quantize(z, { training: false });
    expect(Array.from(await r.indices.data())).toEqual([1, 0, 2]);
    expectClose(await r.quantized.data(), [0, 1, 1, 0, -1, 0], 1e-6);
    tf.dispose([z, r.quantized, r.indices, ...Object.values(r.losses)]);
    q.dispose();
  });
});
