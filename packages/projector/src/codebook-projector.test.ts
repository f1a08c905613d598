import { assertNoLeaks } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { maxRelDiff, reference } from '../test/reference';
import { AdapterInputError } from './adapter-input-error';
import { CodebookProjector } from './codebook-projector';

function loadCase(name: string): { p: CodebookProjector; c: (typeof reference.mlp)[number] } {
  const c = reference.mlp.find((m) => m.name === name);
  if (!c) throw new Error(`no reference case ${name}`);
  const p = new CodebookProjector(c.config);
  const dict = Object.fromEntries(Object.entries(c.state).map(([k, t]) => [`layers.${k}`, tf.tensor(t.data, t.shape)]));
  p.loadStateDict(dict);
  tf.dispose(Object.values(dict));
  return { p, c };
}

describe('CodebookProjector', () => {
  it("defaults to LLaVA's mlp2x_gelu with nn.Sequential names and PyTorch [out, in] layout", () => {
    const p = new CodebookProjector({ inputDim: 8, outputDim: 16 });
    expect(p.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([
      ['layers.0.weight', [16, 8]],
      ['layers.0.bias', [16]],
      ['layers.2.weight', [16, 16]],
      ['layers.2.bias', [16]],
    ]);
    expect(p.config.activation).toBe('gelu');
    expect(p.outputDim).toBe(16);
    p.dispose();
  });

  it('honours depth, hiddenDim and bias: false', () => {
    const p = new CodebookProjector({ inputDim: 3, outputDim: 5, depth: 3, hiddenDim: 7, bias: false });
    expect(p.namedParameters().map(([n, v]) => [n, v.shape])).toEqual([
      ['layers.0.weight', [7, 3]],
      ['layers.2.weight', [7, 7]],
      ['layers.4.weight', [5, 7]],
    ]);
    p.dispose();
  });

  it('inits as PyTorch nn.Linear (U(-1/sqrt(in), 1/sqrt(in))) and is reproducible with a seed', async () => {
    const a = new CodebookProjector({ inputDim: 64, outputDim: 32, seed: 3 });
    const b = new CodebookProjector({ inputDim: 64, outputDim: 32, seed: 3 });
    const wa = (await a.linears[0].weight.data()) as Float32Array;
    const wb = await b.linears[0].weight.data();
    expect(Array.from(wa)).toEqual(Array.from(wb));
    const bound = 1 / Math.sqrt(64);
    expect(Math.max(...wa.map(Math.abs))).toBeLessThanOrEqual(bound);
    // Uniform on [-b, b] has std b/sqrt(3); 2048 samples pin it within a few percent.
    const std = Math.sqrt(wa.reduce((s, v) => s + v * v, 0) / wa.length);
    expect(std).toBeGreaterThan((bound / Math.sqrt(3)) * 0.9);
    expect(std).toBeLessThan((bound / Math.sqrt(3)) * 1.1);
    a.dispose();
    b.dispose();
  });

  for (const name of ['mlp2x_gelu', 'mlp3x_gelu_hidden5_tanh', 'linear']) {
    it(`matches PyTorch (${name}): output, input gradient and parameter gradients`, async () => {
      const { p, c } = loadCase(name);
      const x = tf.tensor3d(c.x.data, c.x.shape as [number, number, number]);
      const r = tf.tensor3d(c.r.data, c.r.shape as [number, number, number]);
      const indices = tf.zeros([2, 3], 'int32') as tf.Tensor2D;
      const y = p.apply({ quantized: x, indices });
      expect(y.shape).toEqual(c.y.shape);
      expect(maxRelDiff(await y.data(), c.y.data)).toBeLessThan(1e-5);
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(p.apply({ quantized: x, indices }), r)) as tf.Scalar);
      const named = Object.fromEntries(p.namedParameters().map(([n, v]) => [v.name, n]));
      for (const [varName, g] of Object.entries(grads)) {
        const key = named[varName].replace(/^layers\./, '');
        expect(maxRelDiff(await g.data(), c.grads[key]), key).toBeLessThan(1e-5);
      }
      const gx = tf.grad((q: tf.Tensor) => tf.sum(tf.mul(p.apply({ quantized: q as tf.Tensor3D, indices }), r)))(x);
      expect(maxRelDiff(await gx.data(), c.gradX)).toBeLessThan(1e-5);
      tf.dispose([x, r, indices, y, value, gx, ...Object.values(grads)]);
      p.dispose();
    });
  }

  it('gradients agree with central finite differences (every parameter and input entry)', async () => {
    for (const activation of ['gelu', 'gelu-tanh'] as const) {
      const p = new CodebookProjector({ inputDim: 3, outputDim: 4, hiddenDim: 5, activation, seed: 11 });
      const x = tf.randomNormal([2, 2, 3], 0, 1, 'float32', 5) as tf.Tensor3D;
      const r = tf.randomNormal([2, 2, 4], 0, 1, 'float32', 6);
      const indices = tf.zeros([2, 2], 'int32') as tf.Tensor2D;
      const f = (q: tf.Tensor3D) => tf.tidy(() => tf.sum(tf.mul(p.apply({ quantized: q, indices }), r)).dataSync()[0]);
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(p.apply({ quantized: x, indices }), r)) as tf.Scalar);
      const eps = 1e-2;
      for (const [, v] of p.namedParameters()) {
        const analytic = await grads[v.name].data();
        const base = await v.data();
        for (let i = 0; i < base.length; i++) {
          const shifted = (delta: number) => {
            const w = base.slice();
            w[i] += delta;
            tf.tidy(() => v.assign(tf.tensor(w, v.shape)));
            return f(x);
          };
          const numeric = (shifted(eps) - shifted(-eps)) / (2 * eps);
          tf.tidy(() => v.assign(tf.tensor(base, v.shape)));
          expect(Math.abs(numeric - analytic[i]), `${v.name}[${i}] ${activation}`).toBeLessThan(2e-3 * (1 + Math.abs(analytic[i])));
        }
      }
      const gx = tf.grad((q: tf.Tensor) => tf.sum(tf.mul(p.apply({ quantized: q as tf.Tensor3D, indices }), r)))(x);
      const gxData = await gx.data();
      const xData = await x.data();
      for (let i = 0; i < xData.length; i++) {
        const at = (delta: number) => {
          const d = xData.slice();
          d[i] += delta;
          return tf.tidy(() => f(tf.tensor3d(d, [2, 2, 3])));
        };
        const numeric = (at(eps) - at(-eps)) / (2 * eps);
        expect(Math.abs(numeric - gxData[i])).toBeLessThan(2e-3 * (1 + Math.abs(gxData[i])));
      }
      tf.dispose([x, r, indices, value, gx, ...Object.values(grads)]);
      p.dispose();
    }
  });

  it('rejects wrong rank, wrong code dim and wrong dtype with AdapterInputError', () => {
    const p = new CodebookProjector({ inputDim: 4, outputDim: 6 });
    const indices = tf.zeros([1, 2], 'int32') as tf.Tensor2D;
    const rank4 = tf.zeros([1, 2, 2, 4]) as unknown as tf.Tensor3D;
    const wrongD = tf.zeros([1, 2, 5]) as tf.Tensor3D;
    const ints = tf.zeros([1, 2, 4], 'int32') as tf.Tensor3D;
    expect(() => p.apply({ quantized: rank4, indices })).toThrow(AdapterInputError);
    expect(() => p.apply({ quantized: rank4, indices })).toThrow(/must be \[B, N, D=4\], got rank 4 \[1,2,2,4\].*tf\.reshape/);
    expect(() => p.apply({ quantized: wrongD, indices })).toThrow(/code dim 5 .* expects D=4/);
    expect(() => p.apply({ quantized: ints, indices })).toThrow(/float32, got int32/);
    tf.dispose([indices, rank4, wrongD, ints]);
    p.dispose();
  });

  it('rejects bad configs: unknown keys, non-positive sizes, unknown activation', () => {
    expect(() => new CodebookProjector({ inputDim: 4, outputDim: 6, hiddenDims: 3 } as never)).toThrow(
      /unknown config key\(s\) "hiddenDims"/,
    );
    expect(() => new CodebookProjector({ inputDim: 0, outputDim: 6 })).toThrow(/inputDim must be a positive integer, got 0/);
    expect(() => new CodebookProjector({ inputDim: 4, outputDim: 6, depth: 1.5 })).toThrow(/depth must be a positive integer/);
    expect(() => new CodebookProjector({ inputDim: 4, outputDim: 6, activation: 'relu' as never })).toThrow(/'gelu' or 'gelu-tanh'/);
  });

  it('leaks no tensors in apply, gradients, or construct + dispose', async () => {
    const p = new CodebookProjector({ inputDim: 4, outputDim: 6, depth: 3 });
    const x = tf.randomNormal([2, 3, 4]) as tf.Tensor3D;
    const indices = tf.zeros([2, 3], 'int32') as tf.Tensor2D;
    await assertNoLeaks(() => tf.dispose(p.apply({ quantized: x, indices })), 'apply');
    await assertNoLeaks(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(p.apply({ quantized: x, indices })) as tf.Scalar);
      tf.dispose([value, ...Object.values(grads)]);
    }, 'variableGrads');
    await assertNoLeaks(() => new CodebookProjector({ inputDim: 4, outputDim: 6 }).dispose(), 'construct + dispose');
    tf.dispose([x, indices]);
    p.dispose();
  });
});
