// The webgpu backend as initBackend sets it up, against independent references: naive float64
// loops for conv and matmul, float64 sums for addN, and central finite differences of a small
// conv + attention + embedding network computed on the GPU itself. On this project's machines it
// runs on a software GPU (Mesa llvmpipe through Dawn's OpenGL ES backend): CI installs Mesa and fails
// if WebGPU does not start; elsewhere the tests are skipped with the reason.
import * as tf from '@tensorflow/tfjs-core';
import { type TestContext, afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConvCase, expectClose, geometry, naiveConvGrads, randn, runOn, size, convValueAndGrads } from '../../test/reference';
import { doctor, formatDoctorReport } from '../doctor';
import { type BackendReport, initBackend } from '../init';
import type { GpuDeviceLike } from './adapter';
import { addNChunk, im2colBudget } from './kernels';
import { WebGpuError } from './setup';

let report: BackendReport | null = null;
let failure: Error | null = null;
beforeAll(async () => {
  try {
    report = await initBackend({ backend: 'webgpu' });
  } catch (err) {
    failure = err as Error;
  }
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

/** Skips (or, under CI, fails) when WebGPU could not start here. */
function needsGpu(ctx: TestContext): void {
  if (report != null) return;
  const why = `WebGPU did not start: ${failure?.message}`;
  if (process.env['CI']) throw new Error(`${why}\n(.ci/run installs Mesa's EGL/GLES so that Dawn finds a software GPU)`);
  console.warn(`skipped: ${why}`);
  ctx.skip();
}

const device = () => (tf.backend() as unknown as { device: GpuDeviceLike }).device;

/** Runs `f` on a backend and returns its outputs as plain arrays; these tests rest on webgpu. */
const on = (backend: 'cpu' | 'webgpu', f: () => tf.Tensor[]) => runOn(backend, 'webgpu', f);

describe('webgpu backend', () => {
  it('starts on an adapter, names it, and patches its kernels', async (ctx) => {
    needsGpu(ctx);
    const r = report!;
    expect(r.backend).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    expect(r.webgpu!.name.length).toBeGreaterThan(3);
    expect(r.patchedKernels).toEqual(expect.arrayContaining(['AddN', 'Conv2DBackpropFilter']));
    expect(r.device).toBe(r.webgpu!.software ? 'cpu' : 'gpu');
    if (r.webgpu!.software) expect(r.warnings.join(' ')).toMatch(/software adapter/);
    const text = formatDoctorReport(await doctor({ backend: 'webgpu' }));
    expect(text).toContain(`adapter      ${r.webgpu!.name}`);
    expect(text).toContain('patched kernels (webgpu)');
  });

  it('addN sums any number of inputs, past the storage-buffer limit of one shader', async (ctx) => {
    needsGpu(ctx);
    const chunk = addNChunk(device());
    for (const n of [1, 2, chunk, chunk + 1, chunk + 2, 3 * chunk, 40]) {
      const inputs = Array.from({ length: n }, (_, i) => randn(33, 100 + i));
      const [got] = await on('webgpu', () => [tf.addN(inputs.map((v) => tf.tensor1d(v)))]);
      const want = new Float64Array(33);
      for (const v of inputs) for (let j = 0; j < 33; j++) want[j]! += v[j];
      expectClose(got!, want, 1e-6);
    }
  });

  it('uploads values by writeBuffer into pooled buffers (no staging buffer per upload), and the values arrive', async (ctx) => {
    needsGpu(ctx);
    const x = randn(4096, 7);
    const ints = Int32Array.from({ length: 4096 }, (_, i) => ((i * 7919) % 1000) - 500);
    const xt = tf.tensor1d(x);
    // Each round uploads 20 scalars, 20 int32 and 20 bool tensors (4096 elements: past tfjs's CPU hand-off).
    const round = async () => {
      const outs = Array.from({ length: 20 }, (_, i) =>
        tf.tidy(() => {
          const scaled = tf.mul(xt, 0.5 + i);
          const shifted = tf.cast(
            tf.tensor1d(
              ints.map((v) => v + i),
              'int32',
            ),
            'float32',
          );
          const signs = tf.cast(tf.tensor1d(Array.from(ints, (v) => v + i > 0) as unknown as Int32Array, 'bool'), 'float32');
          return tf.add(tf.add(scaled, shifted), signs);
        }),
      );
      const values = await Promise.all(outs.map((o) => o.data()));
      tf.dispose(outs);
      return values;
    };
    await round(); // fills the buffer pool
    const dev = device() as unknown as { createBuffer: (...a: unknown[]) => unknown };
    const create = dev.createBuffer;
    let created = 0;
    dev.createBuffer = (...a: unknown[]) => {
      created++;
      return create.apply(dev, a);
    };
    let got: Float32Array[];
    try {
      got = (await round()) as Float32Array[];
    } finally {
      dev.createBuffer = create;
      xt.dispose();
    }
    // Stock tfjs-backend-webgpu creates a staging buffer per upload here: 60 per round.
    expect(created).toBe(0);
    got.forEach((g, i) => {
      const want = new Float64Array(4096);
      for (let j = 0; j < 4096; j++) want[j] = x[j]! * (0.5 + i) + (ints[j]! + i) + (ints[j]! + i > 0 ? 1 : 0);
      expectClose(g, want, 1e-6);
    });
  });

  const cases: (ConvCase & { label: string })[] = [];
  for (const s of [1, 2])
    for (const k of [1, 3, 4])
      for (const pad of ['same', 'valid'] as const) cases.push({ b: 2, h: 7, w: 6, ci: 3, co: 4, k, s, pad, label: `k${k} s${s} ${pad}` });
  it.for(cases)('conv2d and both its gradients ($label) equal a naive float64 reference', async (c, ctx) => {
    needsGpu(ctx);
    const { oh, ow } = geometry(c);
    const x = randn(c.b * c.h * c.w * c.ci, 1);
    const w = randn(c.k * c.k * c.ci * c.co, 2);
    const dy = randn(c.b * oh * ow * c.co, 3);
    const [y, gx, gw] = await on('webgpu', convValueAndGrads(c, x, w, dy));
    const ref = naiveConvGrads(c, x, w, dy);
    expectClose(y!, ref.y, 1e-5);
    expectClose(gx!, ref.dx, 1e-5);
    expectClose(gw!, ref.dw, 1e-5);
  });

  it('conv2d filter gradient in batch chunks, and per tap past the im2col budget, equals the naive reference', async (ctx) => {
    needsGpu(ctx);
    const c: ConvCase = { b: 3, h: 7, w: 6, ci: 3, co: 4, k: 3, s: 2, pad: 'same' };
    const { oh, ow } = geometry(c);
    const perSample = oh * ow * c.k * c.k * c.ci; // 324 im2col elements per sample
    const x = randn(c.b * c.h * c.w * c.ci, 11);
    const w = randn(c.k * c.k * c.ci * c.co, 12);
    const dy = randn(c.b * oh * ow * c.co, 13);
    const ref = naiveConvGrads(c, x, w, dy);
    const saved = im2colBudget.elements;
    try {
      // one sample per chunk; two then one (uneven last chunk); per tap (a sample exceeds the budget)
      for (const budget of [perSample, 2 * perSample + 1, perSample - 1]) {
        im2colBudget.elements = budget;
        const [, , gw] = await on('webgpu', convValueAndGrads(c, x, w, dy));
        expectClose(gw!, ref.dw, 1e-5);
      }
    } finally {
      im2colBudget.elements = saved;
    }
  });

  it('conv2d filter gradient with explicit asymmetric padding and a larger batch', async (ctx) => {
    needsGpu(ctx);
    // pad [[0,0],[0,1],[0,1],[0,0]] is the VQGAN downsample; checked against the same-padded naive
    // conv on an input with the extra zero row/column appended.
    const [b, h, w, ci, co] = [5, 8, 8, 6, 5];
    const x = randn(b * h * w * ci, 4);
    const k = randn(3 * 3 * ci * co, 5);
    const dy = randn(b * 4 * 4 * co, 6);
    const [gw] = await on('webgpu', () => {
      const dyt = tf.tensor4d(dy, [b, 4, 4, co]);
      const f = (kt: tf.Tensor) =>
        tf.sum(
          tf.mul(
            tf.conv2d(tf.tensor4d(x, [b, h, w, ci]), kt as tf.Tensor4D, 2, [
              [0, 0],
              [0, 1],
              [0, 1],
              [0, 0],
            ]),
            dyt,
          ),
        );
      return [tf.grad(f)(tf.tensor4d(k, [3, 3, ci, co]))];
    });
    const padded = new Float32Array(b * (h + 1) * (w + 1) * ci);
    for (let n = 0; n < b; n++)
      for (let y = 0; y < h; y++)
        padded.set(x.subarray((n * h + y) * w * ci, ((n * h + y) * w + w) * ci), (n * (h + 1) + y) * (w + 1) * ci);
    const ref = naiveConvGrads({ b, h: h + 1, w: w + 1, ci, co, k: 3, s: 2, pad: 'valid' }, padded, k, dy);
    expectClose(gw!, ref.dw, 1e-5);
  });

  it('batched matmul with every transpose, and its gradients, equal a float64 reference', async (ctx) => {
    needsGpu(ctx);
    const [bt, m, kk, n] = [3, 5, 7, 4];
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const a = randn(bt * m * kk, 7);
        const b = randn(bt * kk * n, 8);
        const g = randn(bt * m * n, 9);
        const at = (i: number, r: number, c: number) => a[i * m * kk + (ta ? c * m + r : r * kk + c)]!;
        const btv = (i: number, r: number, c: number) => b[i * kk * n + (tb ? c * kk + r : r * n + c)]!;
        const [y, da, db] = await on('webgpu', () => {
          const A = tf.tensor3d(a, ta ? [bt, kk, m] : [bt, m, kk]);
          const B = tf.tensor3d(b, tb ? [bt, n, kk] : [bt, kk, n]);
          const G = tf.tensor3d(g, [bt, m, n]);
          const [ga, gb] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(tf.matMul(p, q, ta, tb), G)))([A, B]);
          return [tf.matMul(A, B, ta, tb), ga!, gb!];
        });
        const wantY = new Float64Array(bt * m * n);
        const wantA = new Float64Array(a.length);
        const wantB = new Float64Array(b.length);
        for (let i = 0; i < bt; i++)
          for (let r = 0; r < m; r++)
            for (let c = 0; c < n; c++)
              for (let j = 0; j < kk; j++) {
                const gi = g[(i * m + r) * n + c]!;
                wantY[(i * m + r) * n + c]! += at(i, r, j) * btv(i, j, c);
                wantA[i * m * kk + (ta ? j * m + r : r * kk + j)]! += gi * btv(i, j, c);
                wantB[i * kk * n + (tb ? c * kk + j : j * n + c)]! += gi * at(i, r, j);
              }
        expectClose(y!, wantY, 1e-5);
        expectClose(da!, wantA, 1e-5);
        expectClose(db!, wantB, 1e-5);
      }
  });

  // A conv + norm + attention + embedding network with the op mix of a tokenizer and an LM.
  const P = { conv: [3, 3, 3, 8], q: [8, 8], k: [8, 8], v: [8, 8], emb: [5, 8], out: [8, 5] } as const;
  const params = Object.fromEntries(
    Object.entries(P).map(([name, shape], i) => [name, Float32Array.from(randn(size([...shape]), 20 + i), (v) => 0.5 * v)]),
  );
  const images = randn(2 * 8 * 8 * 3, 30);
  const ids = [0, 3, 1, 4, 2, 2, 0, 1];
  function netLoss(p: Record<string, tf.Tensor>): tf.Scalar {
    const x = tf.tensor4d(images, [2, 8, 8, 3]);
    let h = tf.conv2d(x, p['conv'] as tf.Tensor4D, 2, [
      [0, 0],
      [0, 1],
      [0, 1],
      [0, 0],
    ]);
    const { mean, variance } = tf.moments(h, [1, 2, 3], true);
    h = tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, 1e-5)));
    h = tf.mul(h, tf.sigmoid(h)); // SiLU
    const tokens = tf.reshape(h, [2, 16, 8]);
    const emb = tf.gather(p['emb'] as tf.Tensor2D, tf.tensor1d(ids, 'int32'));
    const seq = tf.concat([tokens, tf.reshape(tf.tile(emb, [2, 1]), [2, 8, 8])], 1);
    const flat = tf.reshape(seq, [48, 8]);
    const q = tf.reshape(tf.matMul(flat, p['q'] as tf.Tensor2D), [2, 24, 8]);
    const k = tf.reshape(tf.matMul(flat, p['k'] as tf.Tensor2D), [2, 24, 8]);
    const v = tf.reshape(tf.matMul(flat, p['v'] as tf.Tensor2D), [2, 24, 8]);
    const att = tf.softmax(tf.div(tf.matMul(q, k, false, true), Math.sqrt(8)));
    const o = tf.add(seq, tf.matMul(att, v));
    const logits = tf.matMul(tf.reshape(o, [48, 8]), p['out'] as tf.Tensor2D);
    const labels = tf.oneHot(
      tf.tensor1d(
        Array.from({ length: 48 }, (_, i) => i % 5),
        'int32',
      ),
      5,
    );
    return tf.losses.softmaxCrossEntropy(labels, logits) as tf.Scalar;
  }
  const names = Object.keys(P) as (keyof typeof P)[];
  const tensors = (values: Record<string, Float32Array>) => Object.fromEntries(names.map((n) => [n, tf.tensor(values[n]!, [...P[n]])]));

  it('gradients of a conv + attention + embedding network agree with central finite differences on the GPU and with cpu', async (ctx) => {
    needsGpu(ctx);
    const grad = (backend: 'cpu' | 'webgpu') =>
      on(backend, () => {
        const t = tensors(params);
        return tf.grads((...xs: tf.Tensor[]) => netLoss(Object.fromEntries(names.map((n, i) => [n, xs[i]!]))))(names.map((n) => t[n]!));
      });
    const gpuGrads = await grad('webgpu');
    const cpuGrads = await grad('cpu');
    for (const [i, g] of gpuGrads.entries()) expectClose(g, cpuGrads[i]!, 1e-4);
    const lossAt = async (values: Record<string, Float32Array>) => (await on('webgpu', () => [netLoss(tensors(values))]))[0]![0]!;
    const eps = 1e-2;
    for (const [pi, name] of names.entries()) {
      for (const j of [0, 7, params[name]!.length - 1]) {
        const plus = { ...params, [name]: Float32Array.from(params[name]!) };
        const minus = { ...params, [name]: Float32Array.from(params[name]!) };
        plus[name]![j]! += eps;
        minus[name]![j]! -= eps;
        const fd = ((await lossAt(plus)) - (await lossAt(minus))) / (2 * eps);
        const g = gpuGrads[pi]![j]!;
        expect(Math.abs(g - fd), `${name}[${j}]: autodiff ${g}, finite difference ${fd}`).toBeLessThan(3e-3 + 2e-2 * Math.abs(g));
      }
    }
  });

  it('turns an uncaptured GPU error into an exception at the next read, once', async (ctx) => {
    needsGpu(ctx);
    const t = tf.tensor1d([1, 2, 3]);
    const u = tf.add(t, 1);
    const usage = (globalThis as unknown as { GPUBufferUsage: Record<string, number> }).GPUBufferUsage;
    // MAP_READ together with MAP_WRITE is a validation error, reported outside any error scope.
    (device() as unknown as { createBuffer(d: object): unknown }).createBuffer({
      size: 4,
      usage: usage['MAP_READ']! | usage['MAP_WRITE']!,
    });
    await expect(u.data()).rejects.toThrow(WebGpuError);
    expect(Array.from(await u.data())).toEqual([2, 3, 4]);
    tf.dispose([t, u]);
  });

  it('dataSync on a GPU tensor says how to read it in Node', async (ctx) => {
    needsGpu(ctx);
    // Big enough to run on the GPU (tfjs-backend-webgpu computes tiny CPU-resident ops on the CPU).
    const t = tf.ones([64, 64]);
    const u = tf.matMul(t, t);
    expect(() => u.dataSync()).toThrow(/await tensor\.data\(\)/);
    expect((await u.data())[0]).toBe(64);
    tf.dispose([t, u]);
  });
});
