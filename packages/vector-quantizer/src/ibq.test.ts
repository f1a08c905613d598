import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { asVariable, expectClose, reference } from '../test/helpers';
import { weightedQuantizerLoss } from './codebook-quantizer';
import { VQInputError } from './errors';
import { IBQQuantizer } from './ibq';

interface IBQCase {
  n: number;
  d: number;
  k: number;
  temperature: number;
  betaPlacement: 'codebook' | 'commitment';
  l2Normalize: boolean;
  beta: number;
  z: number[];
  codebook: number[];
  w: number[];
  indices: number[];
  quantized: number[];
  quant: number;
  gradZ: number[];
  gradCodebook: number[];
  steGradZ: number[];
  steGradCodebook: number[];
}
const fixture = reference as { ibq: IBQCase[] };

function makeIBQ(c: Pick<IBQCase, 'k' | 'd' | 'codebook'>, extra: Partial<ConstructorParameters<typeof IBQQuantizer>[0]> = {}) {
  const q = new IBQQuantizer({ codebookSize: c.k, codeDim: c.d, entropy: { kind: 'off' }, ...extra });
  tf.tidy(() => q.embedding.assign(tf.tensor2d(c.codebook, [c.k, c.d])));
  return q;
}

/** Gradients of `sum(z_q ⊙ w) + (withQuant ? quant : 0)` w.r.t. z and the codebook. */
async function ibqGrads(q: IBQQuantizer, c: IBQCase, withQuant: boolean) {
  const z = asVariable(tf.tensor2d(c.z, [c.n, c.d]));
  const w = tf.tensor2d(c.w, [c.n, c.d]);
  const { grads, value } = tf.variableGrads(() => {
    const r = q.quantize(z, { training: false });
    const out = tf.sum(tf.mul(r.quantized, w));
    return (withQuant ? tf.add(out, r.losses.quant) : out) as tf.Scalar;
  }, [z, q.embedding]);
  const res = { gz: await grads[z.name].data(), ge: await grads[q.embedding.name].data(), value: await value.data() };
  tf.dispose([z, w, value, ...Object.values(grads)]);
  return res;
}

describe('IBQQuantizer', () => {
  it('forward equals E[argmax(z·Eᵀ)] exactly, indices in the input layout', async () => {
    const [b, h, w, d, k] = [2, 3, 2, 4, 11];
    const q = new IBQQuantizer({ codebookSize: k, codeDim: d, seed: 3 });
    const z = tf.randomNormal([b, h, w, d], 0, 1, 'float32', 7) as tf.Tensor4D;
    const r = q.quantize(z, { training: false });
    expect(r.quantized.shape).toEqual([b, h, w, d]);
    expect(r.indices.shape).toEqual([b, h, w]);
    expect(r.indices.dtype).toBe('int32');
    const [zv, ev, qv, iv] = await Promise.all([z.data(), q.embedding.data(), r.quantized.data(), r.indices.data()]);
    for (let i = 0; i < b * h * w; i++) {
      let best = -1;
      let bestScore = -Infinity;
      for (let c = 0; c < k; c++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += zv[i * d + j] * ev[c * d + j];
        if (s > bestScore) [best, bestScore] = [c, s];
      }
      expect(iv[i]).toBe(best);
      for (let j = 0; j < d; j++) expect(qv[i * d + j]).toBe(ev[best * d + j]);
    }
    tf.dispose([z, r.quantized, r.indices, ...Object.values(r.losses)]);
    q.dispose();
  });

  for (const [i, c] of fixture.ibq.entries()) {
    it(`gradients w.r.t. z and every codebook row match the PyTorch reference (case ${i}: τ ${c.temperature}, β on ${c.betaPlacement}, l2 ${c.l2Normalize})`, async () => {
      const q = makeIBQ(c, { temperature: c.temperature, betaPlacement: c.betaPlacement, l2Normalize: c.l2Normalize, beta: c.beta });
      const zin = tf.tensor2d(c.z, [c.n, c.d]);
      const r = q.quantize(zin, { training: false });
      zin.dispose();
      expect(Array.from(await r.indices.data())).toEqual(c.indices);
      expectClose(await r.quantized.data(), c.quantized, 1e-6);
      expectClose(await r.losses.quant.data(), [c.quant], 1e-5);
      tf.dispose([r.quantized, r.indices, r.losses.quant]);
      const full = await ibqGrads(q, c, true);
      expectClose(full.gz, c.gradZ, 1e-4);
      expectClose(full.ge, c.gradCodebook, 1e-4);
      const ste = await ibqGrads(q, c, false);
      expectClose(ste.gz, c.steGradZ, 1e-4);
      expectClose(ste.ge, c.steGradCodebook, 1e-4);
      q.dispose();
    });
  }

  it('every codebook row gets a non-zero gradient (index backpropagation)', async () => {
    const c = fixture.ibq[0];
    const q = makeIBQ(c);
    const { ge } = await ibqGrads(q, c, false);
    const selected = new Set(c.indices);
    expect(selected.size).toBeLessThan(c.k); // some rows are never selected, and still learn
    for (let row = 0; row < c.k; row++) {
      const norm = Math.hypot(...Array.from(ge.subarray(row * c.d, (row + 1) * c.d)));
      expect(norm, `row ${row}`).toBeGreaterThan(1e-6);
    }
    q.dispose();
  });

  it('block-wise logits give the same values and gradients as one dense block', async () => {
    const c = fixture.ibq[1];
    const run = async (maxBlockElements: number) => {
      const q = makeIBQ(c, { maxBlockElements, temperature: 0.5, entropy: { kind: 'on', temperature: 0.3, weight: 1 } });
      const z = asVariable(tf.tensor2d(c.z, [c.n, c.d]));
      const w = tf.tensor2d(c.w, [c.n, c.d]);
      const { grads, value } = tf.variableGrads(() => {
        const r = q.quantize(z, { training: false });
        return tf.addN([tf.sum(tf.mul(r.quantized, w)), r.losses.quant, r.losses.entropy]) as tf.Scalar;
      }, [z, q.embedding]);
      const out = [await value.data(), await grads[z.name].data(), await grads[q.embedding.name].data()];
      tf.dispose([z, w, value, ...Object.values(grads)]);
      q.dispose();
      return out;
    };
    const dense = await run(1 << 22);
    const blocked = await run(c.k * 3); // 3 rows per block, last block partial
    for (let i = 0; i < 3; i++) expectClose(blocked[i], dense[i], 1e-5);
  });

  it('quant loss equals the hand computation, and β moves with betaPlacement', async () => {
    // z = [1, 0], codes e0 = [2, 0], e1 = [0, 3]: z·e0 = 2 > z·e1 = 0, so z_q = e0 and every term is mean((e0 − z)²) = 0.5.
    const z = tf.tensor2d([[1, 0]]);
    const terms = 0.5;
    for (const [placement, expected] of [
      ['codebook', terms + terms + 0.25 * terms],
      ['commitment', terms + 0.25 * terms + terms],
    ] as const) {
      const q = makeIBQ({ k: 2, d: 2, codebook: [2, 0, 0, 3] }, { betaPlacement: placement });
      const r = q.quantize(z, { training: false });
      expect((await r.losses.quant.data())[0]).toBeCloseTo(expected, 6);
      expect(r.lossWeights).toEqual({ quant: 1 });
      // β on the codebook term: ∂quant/∂e0 from the z_q2 term is β·2(e0 − z)/2; on the commitment term it is 2(e0 − z)/2.
      const g = tf.variableGrads(() => q.quantize(z, { training: false }).losses.quant, [q.embedding]);
      const ge = await g.grads[q.embedding.name].data();
      // The z_q term (straight-through) also reaches e0 through the softmax; only the lookup term depends on placement.
      const lookupWeight = placement === 'codebook' ? 0.25 : 1;
      const gWithout = tf.variableGrads(() => {
        const r2 = q.quantize(z, { training: false });
        return tf.sub(r2.losses.quant, tf.mul(tf.mean(tf.square(tf.sub(tf.gather(q.embedding, [0]), z))), lookupWeight)) as tf.Scalar;
      }, [q.embedding]);
      const ge2 = await gWithout.grads[q.embedding.name].data();
      expect(ge[0] - ge2[0]).toBeCloseTo((lookupWeight * 2 * (2 - 1)) / 2, 5);
      tf.dispose([
        r.quantized,
        r.indices,
        r.losses.quant,
        g.value,
        gWithout.value,
        ...Object.values(g.grads),
        ...Object.values(gWithout.grads),
      ]);
      q.dispose();
    }
    z.dispose();
  });

  it('applies the entropy weight only through lossWeights', async () => {
    const q = new IBQQuantizer({ codebookSize: 8, codeDim: 4 });
    const z = tf.randomNormal([5, 4], 0, 1, 'float32', 1);
    const r = q.quantize(z, { training: false });
    expect(r.lossWeights).toEqual({ quant: 1, entropy: 0.05 });
    const total = weightedQuantizerLoss(r);
    const [t, qv, ev] = await Promise.all([total.data(), r.losses.quant.data(), r.losses.entropy.data()]);
    expect(t[0]).toBeCloseTo(qv[0] + 0.05 * ev[0], 5);
    tf.dispose([z, total, r.quantized, r.indices, ...Object.values(r.losses)]);
    q.dispose();
  });

  it('works inside a gradient tape on rank-4 input (indices are computed off the tape)', () => {
    const q = new IBQQuantizer({ codebookSize: 6, codeDim: 3, l2Normalize: true, temperature: 0.1 });
    const g = tf.grads((x: tf.Tensor) => q.quantize(x, { training: false }).losses.quant);
    const x = tf.randomNormal([1, 2, 2, 3], 0, 1, 'float32', 2);
    const [dx] = g([x]);
    expect(dx.shape).toEqual([1, 2, 2, 3]);
    tf.dispose([x, dx]);
    q.dispose();
  });

  it('rejects bad latents with a clear error', () => {
    const q = new IBQQuantizer({ codebookSize: 4, codeDim: 3 });
    const bad = [tf.zeros([2, 4]), tf.zeros([3]), tf.zeros([2, 3], 'int32')];
    expect(() => q.quantize(bad[0])).toThrow(/code dimension 3, got shape \[2,4\]/);
    expect(() => q.quantize(bad[1])).toThrow(VQInputError);
    expect(() => q.quantize(bad[2])).toThrow(/float32/);
    expect(() => new IBQQuantizer({ codebookSize: 4, codeDim: 3, temperature: 0 })).toThrow(/temperature/);
    tf.dispose(bad);
    q.dispose();
  });
});
