import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { expectClose } from '../../test/helpers';
import { AttnBlock } from './attention';
import { Conv2d } from './conv';
import { SeedSequence } from './init';
import { GroupNorm } from './norm';
import { ResnetBlock } from './resnet-block';
import { upsampleNearest2x } from './sampling';

const settings = (conv: 'native' | 'im2col' = 'native') => ({ normGroups: 2, normEps: 1e-6, conv, seeds: new SeedSequence(1) });

describe('Conv2d', () => {
  it('matches a hand computation (3×3, same padding, bias)', async () => {
    const conv = new Conv2d({ inChannels: 1, outChannels: 1, kernelSize: 3, seeds: new SeedSequence(0) });
    tf.tidy(() => {
      conv.weight.assign(tf.tensor4d([0, 1, 0, 1, 2, 1, 0, 1, 0], [3, 3, 1, 1]));
      conv.bias?.assign(tf.tensor1d([0.5]));
    });
    const x = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
    for (const impl of ['native', 'im2col'] as const) {
      (conv as { impl: string }).impl = impl;
      const y = conv.apply(x);
      // y[i,j] = 2·x[i,j] + sum of the 4-neighbours inside the image + 0.5
      expect(Array.from(await y.data())).toEqual([2 + 2 + 3 + 0.5, 4 + 1 + 4 + 0.5, 6 + 1 + 4 + 0.5, 8 + 2 + 3 + 0.5]);
      y.dispose();
    }
    x.dispose();
    conv.dispose();
  });

  for (const [k, stride, padding] of [
    [3, 1, 'same'],
    [3, 2, [0, 1, 0, 1] as [number, number, number, number]],
    [4, 2, 1],
    [1, 1, 'same'],
  ] as [number, number, number | [number, number, number, number] | 'same'][]) {
    it(`im2col equals native in values and gradients (k ${k}, stride ${stride}, padding ${JSON.stringify(padding)})`, async () => {
      const make = (impl: 'native' | 'im2col') =>
        new Conv2d({ inChannels: 3, outChannels: 4, kernelSize: k, stride, padding, impl, seeds: new SeedSequence(3) });
      const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
      const results: Float32Array[][] = [];
      for (const impl of ['native', 'im2col'] as const) {
        const conv = make(impl);
        const outShape = tf.tidy(() => conv.apply(x).shape);
        const r = tf.randomNormal(outShape, 0, 1, 'float32', 5);
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(conv.apply(x), r)) as tf.Scalar, conv.trainableVariables());
        const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(conv.apply(xx as tf.Tensor4D), r)))(x);
        results.push([
          await value.data(),
          await g.data(),
          ...(await Promise.all(conv.trainableVariables().map((v) => grads[v.name].data()))),
        ] as Float32Array[]);
        tf.dispose([r, value, g, ...Object.values(grads)]);
        conv.dispose();
      }
      for (let i = 0; i < results[0].length; i++) expectClose(results[1][i], results[0][i], 1e-4);
      x.dispose();
    });
  }

  it('the im2col input gradient matches central finite differences', async () => {
    const conv = new Conv2d({
      inChannels: 2,
      outChannels: 2,
      kernelSize: 3,
      stride: 2,
      padding: [0, 1, 0, 1],
      impl: 'im2col',
      seeds: new SeedSequence(7),
    });
    const x = tf.randomNormal([2, 4, 4, 2], 0, 1, 'float32', 8) as tf.Tensor4D;
    const r = tf.randomNormal([2, 2, 2, 2], 0, 1, 'float32', 9);
    const loss = (xx: tf.Tensor) => tf.sum(tf.mul(conv.apply(xx as tf.Tensor4D), r));
    const gt = tf.grad(loss)(x);
    const g = await gt.data();
    gt.dispose();
    const xv = await x.data();
    const eps = 1e-2;
    for (const i of [0, 5, 17, 31, 40, 63]) {
      const plus = xv.slice();
      const minus = xv.slice();
      plus[i] += eps;
      minus[i] -= eps;
      const fd = tf.tidy(() => tf.sub(loss(tf.tensor4d(plus, x.shape)), loss(tf.tensor4d(minus, x.shape))).dataSync()[0] / (2 * eps));
      expect(g[i]).toBeCloseTo(fd, 2);
    }
    tf.dispose([x, r]);
    conv.dispose();
  });

  it('rejects a wrong channel count and an even kernel with same padding', () => {
    const conv = new Conv2d({ inChannels: 3, outChannels: 2, kernelSize: 3, seeds: new SeedSequence(0) });
    const x = tf.zeros([1, 4, 4, 2]) as tf.Tensor4D;
    expect(() => conv.apply(x)).toThrow(/expected \[B, H, W, 3\], got \[1,4,4,2\]/);
    expect(() => new Conv2d({ inChannels: 1, outChannels: 1, kernelSize: 4, seeds: new SeedSequence(0) })).toThrow(/odd kernel/);
    x.dispose();
    conv.dispose();
  });
});

describe('GroupNorm', () => {
  it('matches a hand computation per sample and group', async () => {
    const gn = new GroupNorm(4, 2, 1e-6);
    tf.tidy(() => {
      gn.weight.assign(tf.tensor1d([1, 2, 3, 4]));
      gn.bias.assign(tf.tensor1d([0, 0, 0, 1]));
    });
    const xv = Array.from({ length: 2 * 2 * 1 * 4 }, (_, i) => Math.sin(i * 1.7) * 3);
    const x = tf.tensor4d(xv, [2, 2, 1, 4]);
    const yt = gn.apply(x);
    const y = await yt.data();
    yt.dispose();
    for (let b = 0; b < 2; b++) {
      for (let g = 0; g < 2; g++) {
        const idx = [0, 1].flatMap((p) => [0, 1].map((c) => b * 8 + p * 4 + g * 2 + c));
        const vals = idx.map((i) => xv[i]);
        const mean = vals.reduce((s, v) => s + v, 0) / 4;
        const variance = vals.reduce((s, v) => s + (v - mean) ** 2, 0) / 4;
        for (const i of idx) {
          const c = i % 4;
          const expected = ((xv[i] - mean) / Math.sqrt(variance + 1e-6)) * [1, 2, 3, 4][c] + [0, 0, 0, 1][c];
          expect(y[i]).toBeCloseTo(expected, 4);
        }
      }
    }
    x.dispose();
    gn.dispose();
    expect(() => new GroupNorm(6, 4)).toThrow(/do not split/);
  });
});

describe('upsampleNearest2x', () => {
  it('copies each pixel to a 2×2 block, and its gradient sums each 2×2 block of dy (batch 2)', async () => {
    const x = tf.randomNormal([2, 3, 2, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const dy = tf.randomNormal([2, 6, 4, 3], 0, 1, 'float32', 2);
    const y = upsampleNearest2x(x);
    const g = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(upsampleNearest2x(xx as tf.Tensor4D), dy)))(x);
    const [xv, yv, dv, gv] = await Promise.all([x.data(), y.data(), dy.data(), g.data()]);
    const at4 = (b: number, i: number, j: number, c: number, h: number, w: number) => ((b * h + i) * w + j) * 3 + c;
    for (let b = 0; b < 2; b++)
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 2; j++)
          for (let c = 0; c < 3; c++) {
            let sum = 0;
            for (const [di, dj] of [
              [0, 0],
              [0, 1],
              [1, 0],
              [1, 1],
            ]) {
              expect(yv[at4(b, 2 * i + di, 2 * j + dj, c, 6, 4)]).toBe(xv[at4(b, i, j, c, 3, 2)]);
              sum += dv[at4(b, 2 * i + di, 2 * j + dj, c, 6, 4)];
            }
            expect(gv[at4(b, i, j, c, 3, 2)]).toBeCloseTo(sum, 5);
          }
    tf.dispose([x, dy, y, g]);
  });
});

describe('ResnetBlock and AttnBlock', () => {
  it('keep the spatial shape, change channels as asked, and do not leak', () => {
    const rb = new ResnetBlock(4, 6, settings('im2col'));
    const at = new AttnBlock(6, settings());
    const x = tf.randomNormal([2, 4, 4, 4]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const y = tf.tidy(() => at.apply(rb.apply(x)));
    expect(y.shape).toEqual([2, 4, 4, 6]);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(rb.namedParameters().map(([n]) => n)).toContain('nin_shortcut.weight');
    tf.dispose([x, y]);
    rb.dispose();
    at.dispose();
  });
});
