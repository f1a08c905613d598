import { assertNoLeaks } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { maxRelDiff, reference } from '../test/reference';
import { AdapterInputError } from './adapter-input-error';
import { IndexEmbedding } from './index-embedding';

describe('IndexEmbedding', () => {
  it('is a [K, C] table named "weight" (nn.Embedding), N(0, 0.02) by default, seeded', async () => {
    const a = new IndexEmbedding({ codebookSize: 64, outputDim: 32, seed: 1 });
    const b = new IndexEmbedding({ codebookSize: 64, outputDim: 32, seed: 1 });
    expect(a.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([['weight', [64, 32]]]);
    const w = (await a.weight.data()) as Float32Array;
    expect(Array.from(w)).toEqual(Array.from(await b.weight.data()));
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(0.018);
    expect(std).toBeLessThan(0.022);
    a.dispose();
    b.dispose();
  });

  it('matches PyTorch nn.Embedding: rows and the table gradient (repeated indices accumulate)', async () => {
    const ref = reference.embedding;
    const e = new IndexEmbedding(ref.config);
    const w = tf.tensor2d(ref.weight.data, ref.weight.shape as [number, number]);
    e.loadStateDict({ weight: w });
    const indices = tf.tensor2d(ref.indices, undefined, 'int32');
    const r = tf.tensor(ref.r.data, ref.r.shape);
    const y = e.apply({ indices });
    expect(y.shape).toEqual([2, 4, 5]);
    expect(maxRelDiff(await y.data(), ref.y)).toBeLessThan(1e-6);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(e.apply({ indices }), r)) as tf.Scalar);
    expect(maxRelDiff(await grads[e.weight.name].data(), ref.grad)).toBeLessThan(1e-6);
    tf.dispose([w, indices, r, y, value, ...Object.values(grads)]);
    e.dispose();
  });

  it('table gradient agrees with central finite differences', async () => {
    const e = new IndexEmbedding({ codebookSize: 4, outputDim: 3, initStd: 1, seed: 2 });
    const indices = tf.tensor2d(
      [
        [0, 2, 2],
        [3, 0, 2],
      ],
      undefined,
      'int32',
    );
    const r = tf.randomNormal([2, 3, 3], 0, 1, 'float32', 9);
    // A nonlinear loss so the derivative depends on the value: sum(r · y²).
    const loss = () => tf.sum(tf.mul(r, tf.square(e.apply({ indices })))) as tf.Scalar;
    const { value, grads } = tf.variableGrads(loss);
    const analytic = await grads[e.weight.name].data();
    const base = await e.weight.data();
    const eps = 1e-2;
    for (let i = 0; i < base.length; i++) {
      const at = (delta: number) => {
        const w = base.slice();
        w[i] += delta;
        tf.tidy(() => e.weight.assign(tf.tensor2d(w, [4, 3])));
        return tf.tidy(() => loss().dataSync()[0]);
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      expect(Math.abs(numeric - analytic[i]), `weight[${i}]`).toBeLessThan(2e-3 * (1 + Math.abs(analytic[i])));
    }
    // Row 1 is never looked up: exactly zero gradient.
    expect(Array.from(analytic.slice(3, 6))).toEqual([0, 0, 0]);
    tf.dispose([indices, r, value, ...Object.values(grads)]);
    e.dispose();
  });

  it('works when the indices were computed inside the gradient tape (tokenizer argmax)', async () => {
    const e = new IndexEmbedding({ codebookSize: 5, outputDim: 3, seed: 4 });
    const init = tf.randomNormal([2, 5], 0, 1, 'float32', 8);
    const encoder = tf.variable(init);
    init.dispose();
    const x = tf.randomNormal([6, 2], 0, 1, 'float32', 7);
    // Both the encoder and the table are watched: without detaching, tfjs would try to send a
    // gradient into gather's int32 indices and fail.
    const { value, grads } = tf.variableGrads(() => {
      const logits = tf.matMul(x, encoder); // [6, K]
      const indices = tf.reshape(tf.argMax(logits, 1), [2, 3]) as tf.Tensor2D;
      return tf.add(tf.sum(e.apply({ indices })), tf.mul(tf.sum(logits), 1e-3)) as tf.Scalar;
    }, [encoder, e.weight]);
    expect(grads[e.weight.name].shape).toEqual([5, 3]);
    // The encoder only gets the gradient of its own term: nothing flows through the indices.
    const ge = await grads[encoder.name].data();
    const colSums = tf.sum(x, 0);
    const xs = (await colSums.data()).map((v) => v * 1e-3);
    colSums.dispose();
    for (let i = 0; i < 2; i++) for (let k = 0; k < 5; k++) expect(ge[i * 5 + k]).toBeCloseTo(xs[i], 6);
    tf.dispose([encoder, x, value, ...Object.values(grads)]);
    e.dispose();
  });

  it('rejects out-of-range, non-int32, wrong-rank and mismatched inputs with AdapterInputError', () => {
    const e = new IndexEmbedding({ codebookSize: 4, outputDim: 3 });
    const tooBig = tf.tensor2d([[0, 4]], undefined, 'int32');
    const negative = tf.tensor2d([[-1, 0]], undefined, 'int32');
    const floats = tf.tensor2d([[0, 1]]);
    const rank1 = tf.tensor1d([0, 1], 'int32') as unknown as tf.Tensor2D;
    const ok = tf.tensor2d([[0, 1]], undefined, 'int32');
    const q = tf.zeros([1, 3, 8]) as tf.Tensor3D;
    expect(() => e.apply({ indices: tooBig })).toThrow(AdapterInputError);
    expect(() => e.apply({ indices: tooBig })).toThrow(/index 4 at flat position 1 is outside \[0, 4\)/);
    expect(() => e.apply({ indices: negative })).toThrow(/index -1 at flat position 0/);
    expect(() => e.apply({ indices: floats })).toThrow(/must be int32, got float32/);
    expect(() => e.apply({ indices: rank1 })).toThrow(/must be \[B, N\] int32, got rank 1/);
    expect(() => e.apply({ indices: ok, quantized: q })).toThrow(/quantized \[1,3,8\] does not match indices \[1,2\]/);
    expect(() => new IndexEmbedding({ codebookSize: 4, outputDim: 3, size: 2 } as never)).toThrow(/unknown config key/);
    expect(() => new IndexEmbedding({ codebookSize: -4, outputDim: 3 })).toThrow(/codebookSize must be a positive integer/);
    tf.dispose([tooBig, negative, floats, rank1, ok, q]);
    e.dispose();
  });

  it('leaks no tensors in apply, gradients, errors, or construct + dispose', async () => {
    const e = new IndexEmbedding({ codebookSize: 4, outputDim: 3 });
    const indices = tf.tensor2d([[0, 3]], undefined, 'int32');
    const bad = tf.tensor2d([[0, 9]], undefined, 'int32');
    await assertNoLeaks(() => tf.dispose(e.apply({ indices })), 'apply');
    await assertNoLeaks(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(e.apply({ indices })) as tf.Scalar);
      tf.dispose([value, ...Object.values(grads)]);
    }, 'variableGrads');
    await assertNoLeaks(() => expect(() => e.apply({ indices: bad })).toThrow(), 'error path');
    await assertNoLeaks(() => new IndexEmbedding({ codebookSize: 4, outputDim: 3 }).dispose(), 'construct + dispose');
    tf.dispose([indices, bad]);
    e.dispose();
  });
});
