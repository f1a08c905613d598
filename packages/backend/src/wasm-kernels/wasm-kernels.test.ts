// The wasm training kernels, on wasm with 2 threads, against the cpu backend AND against
// independent references (naive float64 loops, adjoint identities, hand-derived gradients): the cpu
// backend is not a safe reference everywhere (its resizeNearestNeighbor gradient is wrong for batch > 1).
// All wasm tests live in this one file: the threaded backend starts once per process.
import fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type BackendReport, initBackend } from '../init';
import { type NativeAddon, loadNative } from '../native/load';
import { countingAddon } from '../../test/native-paths';
import { activeNativeAddon, setNativeAddon } from './native';
import {
  type ConvCase,
  expectClose,
  geometry,
  maxRelErr,
  naiveConvGrads,
  randn,
  runOn,
  size,
  convValueAndGrads,
} from '../../test/reference';

let report: BackendReport;
beforeAll(async () => {
  report = await initBackend({ backend: 'wasm', threads: 2 });
  await tf.setBackend('cpu');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

/** Runs `f` on a backend and returns its outputs as plain arrays; the tests rest on cpu. */
const on = (backend: 'cpu' | 'wasm', f: () => tf.Tensor[]) => runOn(backend, 'cpu', f);

async function sameOnBoth(f: () => tf.Tensor[], tol = 2e-4): Promise<Float32Array[]> {
  const cpu = await on('cpu', f);
  const wasm = await on('wasm', f);
  for (const [i, c] of cpu.entries()) expectClose(wasm[i]!, c, tol);
  return wasm;
}

const CONV_CASES: ConvCase[] = [];
for (const s of [1, 2])
  for (const k of [1, 3, 4]) for (const pad of ['same', 'valid'] as const) CONV_CASES.push({ b: 2, h: 7, w: 6, ci: 3, co: 4, k, s, pad });
// Stride 1 with 16-64 channels: the native direct convolutions (tiles of 8 or 4 pixels and 8 input
// channels, with remainders as narrower tiles; 4×4 'same' pads one pixel more at the bottom and right than at the top).
CONV_CASES.push(
  { b: 2, h: 7, w: 6, ci: 5, co: 16, k: 3, s: 1, pad: 'same' },
  { b: 1, h: 9, w: 10, ci: 16, co: 32, k: 3, s: 1, pad: 'valid' },
  { b: 2, h: 6, w: 5, ci: 8, co: 16, k: 4, s: 1, pad: 'same' },
  { b: 2, h: 6, w: 11, ci: 17, co: 48, k: 2, s: 1, pad: 'same' },
  { b: 1, h: 5, w: 9, ci: 64, co: 64, k: 3, s: 1, pad: 'same' },
  // PatchGAN's last conv: one output channel (im2col; its input gradient: direct, rows of 9 pixels)
  { b: 2, h: 9, w: 9, ci: 64, co: 1, k: 4, s: 1, pad: 'valid' },
  { b: 2, h: 6, w: 6, ci: 8, co: 8, k: 3, s: 1, pad: 'same' }, // rows of 6 pixels: one narrower tile, no full one
);

describe('wasm backend with threads', () => {
  it('starts with 2 threads, SIMD and the training kernels, and reports it', () => {
    expect(report.backend).toBe('wasm');
    expect(report.threads).toBe(2);
    expect(report.simd).toBe(true);
    expect(report.patchedKernels).toEqual(
      expect.arrayContaining([
        'Conv2DBackpropFilter',
        'Conv2DBackpropInput',
        'BatchMatMul',
        'UnsortedSegmentSum',
        'ResizeNearestNeighborGrad',
      ]),
    );
  });

  it('loads the native kernels where the platform and CPU allow, sized to the WASM threads, and says why not elsewhere', () => {
    const flags = process.platform === 'linux' ? (/^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '') : '';
    const avx2 = /\bavx2\b/.test(flags) && /\bfma\b/.test(flags);
    const avx512 = avx2 && ['avx512f', 'avx512bw', 'avx512dq', 'avx512vl'].every((f) => new RegExp(`\\b${f}\\b`).test(flags));
    expect(report.native).not.toBeNull();
    if (process.platform === 'linux' && process.arch === 'x64' && avx2 && process.env['ETT_NATIVE'] !== '0') {
      expect(report.native!.loaded).toBe(true);
      expect(report.native!.isa).toBe(process.env['ETT_NATIVE_ISA']?.toLowerCase() ?? (avx512 ? 'avx512' : 'avx2'));
      expect(report.native!.threads).toBe(2);
      expect(report.attempts.at(-1)!.detail).toContain(`native ${report.native!.isa} kernels`);
    } else {
      expect(report.native!.loaded).toBe(false);
      expect(report.native!.detail.length).toBeGreaterThan(10);
    }
  });

  it('registers the kernels for wasm only', () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    // cpu keeps its own kernels: the patched ones would be slower copies there.
    expect(tf.getKernel('Conv2DBackpropFilter', 'cpu')?.kernelFunc).not.toBe(tf.getKernel('Conv2DBackpropFilter', 'wasm')?.kernelFunc);
    expect(tf.getKernelsForBackend('tensorflow')).toEqual([]);
  });
});

// The conv and matmul cases run twice: on the native kernels (when this machine loads them) and on
// the pure-WASM kernels they fall back to.
// The native path counts its calls, so a silent fallback to WASM fails the test.
const counted = countingAddon([
  'gemm',
  'conv2d',
  'binary',
  'broadcast',
  'sum',
  'max',
  'exp',
  'avgPoolGrad',
  'softmax',
  'copy',
  'argMax',
  'avgPool',
]);
const nativeCalls = counted.calls;
const KERNEL_PATHS = [
  { path: 'native', addon: counted.addon },
  { path: 'wasm-only', addon: () => null },
];
/** Switches the kernel path for a describe block; on the native path, checks the addon really ran. */
function useKernelPath(path: string, addon: () => NativeAddon | null, kind: keyof typeof nativeCalls): void {
  let saved: NativeAddon | null = null;
  let ran = 0;
  let callsBefore = 0;
  beforeAll(() => {
    saved = activeNativeAddon();
    setNativeAddon(addon());
    callsBefore = nativeCalls[kind];
  });
  beforeEach(() => {
    ran++;
  });
  afterAll(() => {
    setNativeAddon(saved);
    if (path === 'native' && loadNative().addon != null && ran > 0) {
      expect(nativeCalls[kind] - callsBefore, `native ${kind} calls`).toBeGreaterThanOrEqual(ran);
    }
  });
}

describe.each(KERNEL_PATHS)('conv2d gradients (wasm vs cpu vs naive float64), $path kernels', ({ path, addon }) => {
  useKernelPath(path, addon, 'conv2d');

  it.each(CONV_CASES)('k$k s$s $pad on $b x $h x $w x $ci -> $co', async (c) => {
    const x = randn(c.b * c.h * c.w * c.ci, 1);
    const w = randn(c.k * c.k * c.ci * c.co, 2);
    const { oh, ow } = geometry(c);
    const dy = randn(c.b * oh * ow * c.co, 3);
    const [y, gx, gw] = await sameOnBoth(convValueAndGrads(c, x, w, dy));
    const ref = naiveConvGrads(c, x, w, dy);
    expectClose(y!, ref.y);
    expectClose(gx!, ref.dx);
    expectClose(gw!, ref.dw);
  });

  it.each(
    CONV_CASES.filter((c) => c.pad === 'same' || c.k <= 3),
  )('conv2dTranspose k$k s$s $pad: adjoint of conv2d, gradients match cpu', async (c) => {
    // conv2dTranspose(y, W) is the adjoint of conv2d(., W): <convT(y), x> = <y, conv(x)>.
    const { oh, ow } = geometry(c);
    const x = randn(c.b * c.h * c.w * c.ci, 4);
    const w = randn(c.k * c.k * c.ci * c.co, 5);
    const y = randn(c.b * oh * ow * c.co, 6);
    const shape: [number, number, number, number] = [c.b, c.h, c.w, c.ci];
    const [t, gy, gw] = await sameOnBoth(() => {
      const yt = tf.tensor4d(y, [c.b, oh, ow, c.co]);
      const wt = tf.tensor4d(w, [c.k, c.k, c.ci, c.co]);
      const r = tf.tensor4d(x, shape);
      const [gy, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, shape, c.s, c.pad), r)),
      )([yt, wt]);
      return [tf.conv2dTranspose(yt, wt, shape, c.s, c.pad), gy!, gw!];
    });
    const ref = naiveConvGrads(c, x, w, y);
    let lhs = 0;
    for (let i = 0; i < x.length; i++) lhs += t![i]! * x[i]!;
    let rhs = 0;
    for (let i = 0; i < y.length; i++) rhs += y[i]! * ref.y[i]!;
    expect(Math.abs(lhs - rhs) / Math.abs(rhs)).toBeLessThan(1e-4);
    // d/dy <convT(y), x> = conv(x); d/dW = the filter gradient of conv at (x, dy = y).
    expectClose(gy!, ref.y);
    expectClose(gw!, ref.dw);
  });

  it.each([
    { b: 2, h: 16, w: 16, ci: 16, co: 16, k: 3, s: 2, pad: 'same' as const, limit: 0 },
    // Stride 2: stride-1 convs with few channels run as direct convolutions, without im2col.
    { b: 2, h: 9, w: 8, ci: 5, co: 6, k: 3, s: 2, pad: 'same' as const, limit: 1000 },
    { b: 3, h: 10, w: 10, ci: 4, co: 8, k: 4, s: 2, pad: 'valid' as const, limit: 300 },
  ])('$h x $w x $ci -> $co k$k s$s $pad, im2col buffer limit $limit (0 = default): value and both gradients', async (c) => {
    const native = activeNativeAddon();
    const previous = c.limit > 0 && native != null ? native.setScratchLimit(c.limit) : null;
    try {
      const x = randn(c.b * c.h * c.w * c.ci, 21);
      const w = randn(c.k * c.k * c.ci * c.co, 22);
      const { oh, ow } = geometry(c);
      const dy = randn(c.b * oh * ow * c.co, 23);
      const [y, gx, gw] = await on('wasm', convValueAndGrads(c, x, w, dy));
      const ref = naiveConvGrads(c, x, w, dy);
      expectClose(y!, ref.y);
      expectClose(gx!, ref.dx);
      expectClose(gw!, ref.dw);
    } finally {
      if (previous != null) native!.setScratchLimit(previous);
    }
  });

  it.each(
    CONV_CASES,
  )('fused conv2d with a bias, k$k s$s $pad on $b x $h x $w x $ci -> $co: value and the x, filter, bias gradients', async (c) => {
    const x = randn(c.b * c.h * c.w * c.ci, 7);
    const w = randn(c.k * c.k * c.ci * c.co, 8);
    const bias = randn(c.co, 9);
    const { oh, ow } = geometry(c);
    const dy = randn(c.b * oh * ow * c.co, 10);
    const before = nativeCalls.conv2d;
    const [y, gx, gw, gb] = await sameOnBoth(() => {
      const xt = tf.tensor4d(x, [c.b, c.h, c.w, c.ci]);
      const wt = tf.tensor4d(w, [c.k, c.k, c.ci, c.co]);
      const bt = tf.tensor1d(bias);
      const dyt = tf.tensor4d(dy, [c.b, oh, ow, c.co]);
      const f = (a: tf.Tensor, f: tf.Tensor, b: tf.Tensor) =>
        tf.fused.conv2d({ x: a as tf.Tensor4D, filter: f as tf.Tensor4D, strides: c.s, pad: c.pad, bias: b });
      return [f(xt, wt, bt), ...tf.grads((a: tf.Tensor, f2: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, f2, b), dyt)))([xt, wt, bt])];
    });
    // Forward twice (the value and the gradient's forward), the two gradients once each.
    if (path === 'native' && loadNative().addon != null) expect(nativeCalls.conv2d - before).toBe(4);
    const ref = naiveConvGrads(c, x, w, dy);
    expectClose(
      y!,
      Array.from(ref.y, (v, i) => v + bias[i % c.co]!),
    );
    expectClose(gx!, ref.dx);
    expectClose(gw!, ref.dw);
    const db = new Float64Array(c.co);
    for (let i = 0; i < dy.length; i++) db[i % c.co]! += dy[i];
    expectClose(gb!, db, 1e-5);
  });

  it('fused conv2d with an activation or without a bias: relu runs the stock kernel, no bias runs the native one; both match cpu', async () => {
    const x = randn(2 * 6 * 6 * 4, 11);
    const w = randn(3 * 3 * 4 * 8, 12);
    const bias = randn(8, 13);
    const before = nativeCalls.conv2d;
    await sameOnBoth(() => [
      tf.fused.conv2d({
        x: tf.tensor4d(x, [2, 6, 6, 4]),
        filter: tf.tensor4d(w, [3, 3, 4, 8]),
        strides: 1,
        pad: 'same',
        bias: tf.tensor1d(bias),
        activation: 'relu',
      }),
      tf.fused.conv2d({ x: tf.tensor4d(x, [2, 6, 6, 4]), filter: tf.tensor4d(w, [3, 3, 4, 8]), strides: 1, pad: 'same' }),
    ]);
    if (path === 'native' && loadNative().addon != null) expect(nativeCalls.conv2d - before).toBe(1);
  });

  it('dilated conv2d forward (dilation 2) matches cpu', async () => {
    const x = randn(2 * 9 * 9 * 3, 24);
    const w = randn(3 * 3 * 3 * 5, 25);
    await sameOnBoth(() => [tf.conv2d(tf.tensor4d(x, [2, 9, 9, 3]), tf.tensor4d(w, [3, 3, 3, 5]), 1, 'same', 'NHWC', 2)]);
  });
});

describe.each(KERNEL_PATHS)('attention and dense matmuls, $path kernels', ({ path, addon }) => {
  useKernelPath(path, addon, 'gemm');

  function naiveMatMul(
    a: Float32Array,
    b: Float32Array,
    g: number,
    m: number,
    k: number,
    n: number,
    ta: boolean,
    tb: boolean,
    gaOne = false,
    gbOne = false,
  ) {
    const out = new Float64Array(g * m * n);
    for (let q = 0; q < g; q++)
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) {
            const ai = (gaOne ? 0 : q * m * k) + (ta ? p * m + i : i * k + p);
            const bi = (gbOne ? 0 : q * k * n) + (tb ? j * k + p : p * n + j);
            s += a[ai]! * b[bi]!;
          }
          out[(q * m + i) * n + j] = s;
        }
    return out;
  }

  it.each([
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ])('batched matMul transposeA=%s transposeB=%s matches a naive float64 matmul', async (ta, tb) => {
    const [g, m, k, n] = [6, 5, 7, 3];
    const a = randn(g * m * k, 7);
    const b = randn(g * k * n, 8);
    const [out] = await sameOnBoth(() => [
      tf.matMul(tf.tensor3d(a, ta ? [g, k, m] : [g, m, k]), tf.tensor3d(b, tb ? [g, n, k] : [g, k, n]), ta, tb),
    ]);
    expectClose(out!, naiveMatMul(a, b, g, m, k, n, ta, tb));
  });

  it.each([
    { g: 8, m: 64, k: 64, n: 64, ta: false, tb: true },
    { g: 1, m: 8, k: 64, n: 2000, ta: true, tb: false },
    { g: 1, m: 300, k: 100, n: 50, ta: true, tb: true },
    { g: 2, m: 200, k: 33, n: 70, ta: false, tb: false },
  ])('multi-threaded sizes: [$g, $m, $k] x [$k, $n] transposeA=$ta transposeB=$tb match a naive float64 matmul', async ({
    g,
    m,
    k,
    n,
    ta,
    tb,
  }) => {
    const a = randn(g * m * k, 15);
    const b = randn(g * k * n, 16);
    const [out] = await on('wasm', () => [
      tf.matMul(tf.tensor3d(a, ta ? [g, k, m] : [g, m, k]), tf.tensor3d(b, tb ? [g, n, k] : [g, k, n]), ta, tb),
    ]);
    expectClose(out!, naiveMatMul(a, b, g, m, k, n, ta, tb));
  });

  it('broadcasts a 2-D weight over a rank-4 activation and a single matrix over a batch', async () => {
    const x = randn(2 * 3 * 5 * 4, 9);
    const w = randn(4 * 6, 10);
    const [dense, left] = await sameOnBoth(() => [
      tf.matMul(tf.tensor4d(x, [2, 3, 5, 4]), tf.tensor2d(w, [4, 6])),
      tf.matMul(tf.tensor3d(w, [1, 6, 4]), tf.tensor3d(x, [6, 4, 5])),
    ]);
    expectClose(dense!, naiveMatMul(x, w, 6, 5, 4, 6, false, false, false, true));
    expectClose(left!, naiveMatMul(w, x, 6, 6, 4, 5, false, false, true, false));
  });

  it('causal multi-head attention: gradients of q, k, v match cpu', async () => {
    const [B, H, T, D] = [2, 3, 5, 4];
    const q = randn(B * H * T * D, 11);
    const k = randn(B * H * T * D, 12);
    const v = randn(B * H * T * D, 13);
    const r = randn(B * H * T * D, 14);
    await sameOnBoth(() => {
      const shape = [B, H, T, D];
      const mask = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
      const attend = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => {
        const scores = tf.div(tf.matMul(qq, kk, false, true), Math.sqrt(D)); // [B, H, T, T]
        const masked = tf.where(tf.cast(mask, 'bool'), scores, tf.fill(scores.shape, -1e9));
        return tf.sum(tf.mul(tf.matMul(tf.softmax(masked), vv), tf.tensor(r, shape)));
      };
      const [gq, gk, gv] = tf.grads(attend)([tf.tensor(q, shape), tf.tensor(k, shape), tf.tensor(v, shape)]);
      return [gq!, gk!, gv!];
    });
  });
});

// Elementwise arithmetic and sums: against float64 loops written from the definition, with
// tfjs's broadcasting. Sizes above 2^15 elements split over the addon's threads.
const BINARY: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, (x: number, y: number) => number][] = [
  ['add', tf.add, (x, y) => x + y],
  ['sub', tf.sub, (x, y) => x - y],
  ['mul', tf.mul, (x, y) => x * y],
  ['div', tf.div, (x, y) => x / y],
];
/** a op b with numpy broadcasting, in float64: the reference. */
function broadcastRef(a: Float32Array, as: number[], b: Float32Array, bs: number[], f: (x: number, y: number) => number) {
  const os = tf.broadcast_util.assertAndGetBroadcastShape(as, bs);
  const out = new Float64Array(size(os));
  const idx = (shape: number[], coord: number[]) => {
    let i = 0;
    const off = coord.length - shape.length;
    shape.forEach((d, j) => {
      i = i * d + (d === 1 ? 0 : coord[off + j]!);
    });
    return i;
  };
  for (let i = 0; i < out.length; i++) {
    const coord: number[] = [];
    let r = i;
    for (let j = os.length - 1; j >= 0; j--) {
      coord.unshift(r % os[j]!);
      r = Math.floor(r / os[j]!);
    }
    out[i] = f(a[idx(as, coord)]!, b[idx(bs, coord)]!);
  }
  return { out, shape: os };
}
const BROADCASTS: [number[], number[], 'binary' | 'broadcast' | 'stock'][] = [
  // [a shape, b shape, the path that runs it natively]
  [[3, 5, 7], [3, 5, 7], 'binary'],
  [[4, 6, 8, 16], [16], 'binary'], // a conv bias
  [[16], [4, 6, 8, 16], 'binary'], // the small operand first (sub, div: order matters)
  [[], [5, 7], 'binary'],
  [[5, 7], [1, 1], 'binary'],
  [[1, 7], [5, 7], 'binary'],
  [[70, 600], [600], 'binary'], // 42 000 elements: split over the threads
  [[2, 150, 128], [2, 150, 128], 'binary'],
  [[5, 7], [5, 1], 'broadcast'], // a row scale (RMSNorm, softmax)
  [[5, 1], [1, 7], 'broadcast'], // both broadcast: an outer sum
  [[8, 4, 9, 9], [8, 1, 9, 9], 'broadcast'], // an attention mask over the heads
  [[8, 4, 9, 1], [8, 4, 9, 9], 'broadcast'], // the small operand first
  [[2, 3, 1, 5], [2, 1, 4, 1], 'broadcast'], // four collapsed dimensions, alternating
  [[300, 200], [300, 1], 'broadcast'], // 60 000 elements: rows split over the threads
  [[3, 1, 5, 1, 7], [1, 4, 1, 6, 1], 'stock'], // five collapsed dimensions
];

describe.each(KERNEL_PATHS)('elementwise arithmetic and sums, $path kernels', ({ path, addon }) => {
  useKernelPath(path, addon, 'binary');
  it.each(BINARY)('%s: same shapes, scalars, broadcasts either side, and the stock fallbacks', async (_name, op, f) => {
    for (const [i, [as, bs, runs]] of BROADCASTS.entries()) {
      const a = randn(size(as), 40 + i);
      const b = Float32Array.from(randn(size(bs), 60 + i), (v) => (f(6, 3) === 2 ? 0.5 + Math.abs(v) : v)); // divisors away from 0
      const before = { binary: nativeCalls.binary, broadcast: nativeCalls.broadcast };
      const [got] = await on('wasm', () => [op(tf.tensor(a, as), tf.tensor(b, bs))]);
      const ref = broadcastRef(a, as, b, bs, f);
      expect(got!.length, `${as} op ${bs}`).toBe(ref.out.length);
      expectClose(got!, ref.out, 1e-6);
      if (path === 'native' && loadNative().addon != null) {
        expect(nativeCalls.binary - before.binary, `${as} op ${bs} on binary`).toBe(runs === 'binary' ? 1 : 0);
        expect(nativeCalls.broadcast - before.broadcast, `${as} op ${bs} on broadcast`).toBe(runs === 'broadcast' ? 1 : 0);
      }
    }
  });

  it('int32 arithmetic stays exact (the stock kernel)', async () => {
    await tf.setBackend('wasm');
    try {
      const a = tf.tensor1d([16777217, -5, 7], 'int32');
      const b = tf.scalar(2, 'int32');
      const t = tf.add(a, b); // 2^24 + 3: not a float32
      expect(t.dtype).toBe('int32');
      expect(Array.from(await t.data())).toEqual([16777219, -3, 9]);
      tf.dispose([a, b, t]);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it.each([
    ['sum', tf.sum],
    ['mean', tf.mean],
  ] as const)('%s over leading, trailing, all and middle axes, with keepDims, against float64 sums', async (name, reduce) => {
    const shape = [6, 5, 40, 33]; // 39 600 elements: the threaded path
    const x = randn(size(shape), 77);
    const cases: [number[] | null, boolean, boolean][] = [
      [[0, 1, 2], false, true], // a conv bias gradient
      [[0], true, true],
      [[3], false, true],
      [[2, 3], true, true],
      [null, false, true],
      [[1, 2], false, false], // middle axes: the stock kernel
    ];
    for (const [axes, keepDims, native] of cases) {
      const before = nativeCalls.sum;
      const [got, gotShape] = await on('wasm', () => {
        const t = reduce(tf.tensor(x, shape), axes ?? undefined, keepDims);
        return [t, tf.tensor1d(t.shape.length ? t.shape : [], 'int32')];
      });
      const red = axes ?? [0, 1, 2, 3];
      const outShape = shape.map((d, i) => (red.includes(i) ? 1 : d));
      const ref = new Float64Array(size(outShape));
      for (let i = 0; i < x.length; i++) {
        let o = 0;
        let r = i;
        const coord = [0, 0, 0, 0];
        for (let j = 3; j >= 0; j--) {
          coord[j] = r % shape[j]!;
          r = Math.floor(r / shape[j]!);
        }
        coord.forEach((c, j) => {
          o = o * outShape[j]! + (red.includes(j) ? 0 : c);
        });
        ref[o]! += x[i];
      }
      if (name === 'mean') for (let i = 0; i < ref.length; i++) ref[i]! /= x.length / ref.length;
      expectClose(got!, ref, 1e-5);
      expect(Array.from(gotShape!)).toEqual(keepDims ? outShape : shape.filter((_, i) => !red.includes(i)));
      if (path === 'native' && loadNative().addon != null) expect(nativeCalls.sum - before, `${name} over ${axes}`).toBe(native ? 1 : 0);
    }
  });

  it('max over trailing axes (native) and others (stock), with keepDims, NaN and -Infinity rows, against a scan', async () => {
    const shape = [6, 5, 40, 33]; // 39 600 elements: the threaded path; rows of 33 and 1 320 (vector tails)
    const x = randn(size(shape), 78);
    x[5 * 33 + 7] = Number.NaN; // row 5 of the last axis
    for (let k = 0; k < 33; k++) x[9 * 33 + k] = Number.NEGATIVE_INFINITY; // row 9: all -Infinity
    const cases: [number[] | null, boolean, boolean][] = [
      [[3], false, true],
      [[2, 3], true, true],
      [null, false, true],
      [[0], false, false], // leading: the stock kernel
    ];
    for (const [axes, keepDims, native] of cases) {
      const before = nativeCalls.max;
      const [got, gotShape] = await on('wasm', () => {
        const t = tf.max(tf.tensor(x, shape), axes ?? undefined, keepDims);
        return [t, tf.tensor1d(t.shape.length ? t.shape : [], 'int32')];
      });
      const red = axes ?? [0, 1, 2, 3];
      const outShape = shape.map((d, i) => (red.includes(i) ? 1 : d));
      const ref = new Float64Array(size(outShape)).fill(Number.NEGATIVE_INFINITY);
      for (let i = 0; i < x.length; i++) {
        let o = 0;
        let r = i;
        const coord = [0, 0, 0, 0];
        for (let j = 3; j >= 0; j--) {
          coord[j] = r % shape[j]!;
          r = Math.floor(r / shape[j]!);
        }
        coord.forEach((c, j) => {
          o = o * outShape[j]! + (red.includes(j) ? 0 : c);
        });
        if (Number.isNaN(x[i]!) || x[i]! > ref[o]!) ref[o] = Number.isNaN(ref[o]!) ? ref[o]! : x[i]!;
      }
      const onAddon = path === 'native' && loadNative().addon != null;
      if (native && onAddon) {
        expect(Array.from(got!).map(String)).toEqual(Array.from(ref).map(String));
      } else {
        // The stock kernel's NaN handling is its own: compare the rows without one.
        const finite = Array.from(ref.keys()).filter((i) => !Number.isNaN(ref[i]!));
        expect(finite.map((i) => got![i])).toEqual(finite.map((i) => ref[i]));
      }
      if (onAddon) expect(nativeCalls.max - before, `max over ${axes}`).toBe(native ? 1 : 0);
      expect(Array.from(gotShape!)).toEqual(keepDims ? outShape : shape.filter((_, i) => !red.includes(i)));
    }
  });

  it('exp: relative error under 1e-6 from -87 to 88, 0 / Infinity / NaN past the float range, split over threads', async () => {
    const n = 50000;
    const x = Float32Array.from({ length: n }, (_, i) => -87 + (175 * i) / (n - 1));
    const tails = Float32Array.from([-1000, -88, -87.5, 88.8, 1000, Number.NaN, 0, -0]);
    const before = nativeCalls.exp;
    const [got, gotTails] = await on('wasm', () => [tf.exp(tf.tensor1d(x)), tf.exp(tf.tensor1d(tails))]);
    if (path === 'native' && loadNative().addon != null) expect(nativeCalls.exp - before).toBe(2);
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got![i]! - Math.exp(x[i]!)) / Math.exp(x[i]!));
    expect(worst).toBeLessThan(1e-6);
    const t = Array.from(gotTails!);
    expect(t.slice(0, 3).every((v) => v >= 0 && v < 1.2e-38)).toBe(true); // 0, or the stock kernel's denormal
    expect(t.slice(3, 5)).toEqual([Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]);
    expect(Number.isNaN(t[5])).toBe(true);
    expect(t.slice(6)).toEqual([1, 1]);
  });

  it('softmax over the last axis: float64 definition, masked (−inf) and huge logits, NaN and ±inf rows, split over threads', async () => {
    const cases: { shape: number[]; fill?: (v: Float32Array) => void }[] = [
      { shape: [8, 4, 37, 37] }, // attention rows (43 808 elements: threaded), 37 = 2·16 + 5 lanes
      { shape: [5, 256] },
      { shape: [3] },
      {
        shape: [6, 7],
        fill: (v) => {
          for (let j = 3; j < 7; j++) v[j] = Number.NEGATIVE_INFINITY; // row 0: causal mask
          v[7] = 1e4; // row 1: one huge logit
          v[14] = Number.NaN; // row 2: NaN
          for (let j = 21; j < 28; j++) v[j] = Number.NEGATIVE_INFINITY; // row 3: all masked (0/0)
          v[30] = Number.POSITIVE_INFINITY; // row 4: inf − inf
          v[35] = -1e4; // row 5: one logit far below the others
        },
      },
    ];
    for (const [i, c] of cases.entries()) {
      const x = Float32Array.from(randn(size(c.shape), 300 + i), (v) => 4 * v);
      c.fill?.(x);
      const before = nativeCalls.softmax;
      const [got] = await on('wasm', () => [tf.softmax(tf.tensor(x, c.shape))]);
      if (path === 'native' && loadNative().addon != null) expect(nativeCalls.softmax - before, `${c.shape}`).toBe(1);
      const cols = c.shape.at(-1)!;
      const want = new Float64Array(x.length);
      for (let r = 0; r < x.length / cols; r++) {
        const row = Array.from(x.subarray(r * cols, (r + 1) * cols));
        const m = Math.max(...row);
        const e = row.map((v) => Math.exp(v - m));
        const z = e.reduce((a, b) => a + b, 0);
        e.forEach((v, j) => {
          want[r * cols + j] = v / z;
        });
      }
      for (let k = 0; k < want.length; k++) {
        if (Number.isNaN(want[k]!)) expect(got![k], `${c.shape} at ${k}`).toBeNaN();
        else expect(Math.abs(got![k]! - want[k]!), `${c.shape} at ${k}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(want[k]!)) + 1e-7);
      }
    }
  });

  it('gradients through broadcast arithmetic and sums match central differences', async () => {
    const as = [3, 4, 8];
    const bs = [8];
    const a = randn(size(as), 91);
    const b = Float32Array.from(randn(size(bs), 92), (v) => 1 + 0.3 * v);
    const w = randn(size(as), 93);
    const loss = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.div(tf.sub(tf.mul(x, y), y), tf.add(y, 2)), tf.tensor(w, as)));
    const [ga, gb] = await on('wasm', () => tf.grads(loss)([tf.tensor(a, as), tf.tensor(b, bs)]));
    const ref = (aa: ArrayLike<number>, bb: ArrayLike<number>) => {
      let s = 0;
      for (let i = 0; i < aa.length; i++) {
        const y = bb[i % 8]!;
        s += ((aa[i]! * y - y) / (y + 2)) * w[i]!;
      }
      return s;
    };
    const fd = (which: 0 | 1, j: number) => {
      const h = 1e-4;
      const p = [Float64Array.from(a), Float64Array.from(b)];
      p[which]![j]! += h;
      const up = ref(p[0]!, p[1]!);
      p[which]![j]! -= 2 * h;
      return (up - ref(p[0]!, p[1]!)) / (2 * h);
    };
    expectClose(
      ga!,
      Array.from({ length: a.length }, (_, j) => fd(0, j)),
      1e-4,
    );
    expectClose(
      gb!,
      Array.from({ length: b.length }, (_, j) => fd(1, j)),
      1e-4,
    );
  });
});

// AvgPoolGrad with tfjs's semantics: each dy element spread over its window's input pixels, divided
// by the full window size (tfjs 4.22 does so also where 'same' padding cut the window, on cpu and
// wasm alike; for 'valid' it is the exact gradient of avgPool).
const AVG_POOL_CASES: { b: number; h: number; w: number; ch: number; f: number; s: number; pad: 'valid' | 'same' }[] = [
  { b: 8, h: 32, w: 32, ch: 3, f: 3, s: 1, pad: 'valid' }, // the structural loss's box filter, threaded
  { b: 2, h: 9, w: 7, ch: 3, f: 2, s: 2, pad: 'valid' }, // its 2x downsampling, odd sizes
  { b: 2, h: 7, w: 6, ch: 5, f: 3, s: 2, pad: 'same' },
  { b: 1, h: 5, w: 8, ch: 2, f: 2, s: 1, pad: 'same' },
  { b: 4, h: 32, w: 32, ch: 8, f: 3, s: 1, pad: 'same' }, // threads over the batch; stride-1 shifts on both sides
  { b: 1, h: 40, w: 36, ch: 16, f: 3, s: 2, pad: 'same' }, // one large image: the calling thread alone
];
describe.each(KERNEL_PATHS)('avg pool gradient, $path kernels', ({ path, addon }) => {
  useKernelPath(path, addon, 'avgPoolGrad');
  it.each(AVG_POOL_CASES)('$f x $f / $s $pad on $b x $h x $w x $ch matches the definition and cpu', async (c) => {
    const x = randn(c.b * c.h * c.w * c.ch, 90);
    const info = tf.backend_util.computePool2DInfo([c.b, c.h, c.w, c.ch], c.f, c.s, 1, c.pad);
    const [oh, ow] = [info.outHeight, info.outWidth];
    const dy = randn(c.b * oh * ow * c.ch, 91);
    const before = nativeCalls.avgPoolGrad;
    const [got] = await sameOnBoth(() => {
      const loss = (t: tf.Tensor) => tf.sum(tf.mul(tf.avgPool(t as tf.Tensor4D, c.f, c.s, c.pad), tf.tensor4d(dy, [c.b, oh, ow, c.ch])));
      return [tf.grad(loss)(tf.tensor4d(x, [c.b, c.h, c.w, c.ch]))];
    }, 1e-5);
    if (path === 'native' && loadNative().addon != null) expect(nativeCalls.avgPoolGrad - before).toBe(1);
    const want = new Float64Array(x.length);
    const { top, left } = info.padInfo;
    for (let n = 0; n < c.b; n++)
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++)
          for (let k = 0; k < c.ch; k++)
            for (let iy = oy * c.s - top; iy < oy * c.s - top + c.f; iy++)
              for (let ix = ox * c.s - left; ix < ox * c.s - left + c.f; ix++)
                if (iy >= 0 && iy < c.h && ix >= 0 && ix < c.w)
                  want[((n * c.h + iy) * c.w + ix) * c.ch + k]! += dy[((n * oh + oy) * ow + ox) * c.ch + k]! / (c.f * c.f);
    expectClose(got!, want, 1e-5);
  });
});

/** Row-major element strides of `shape`. */
const stridesOf = (shape: readonly number[]) => shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));

/** Each output index of `outShape`, with the flat input index `at(index)` gives it. */
function gatherRef(outShape: readonly number[], at: (index: number[]) => number | null, values: readonly number[], fill = 0): number[] {
  const out: number[] = [];
  const index = new Array<number>(outShape.length).fill(0);
  const n = outShape.reduce((a, b) => a * b, 1);
  for (let i = 0; i < n; i++) {
    const from = at(index);
    out.push(from == null ? fill : values[from]!);
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++index[d]! < outShape[d]!) break;
      index[d] = 0;
    }
  }
  return out;
}

describe.each(KERNEL_PATHS)('transpose and pad as strided copies, $path kernels', ({ path, addon }) => {
  useKernelPath(path, addon, 'copy');
  const onNative = () => path === 'native' && loadNative().addon != null;

  it.each([
    { shape: [8, 109, 4, 32], perm: [0, 2, 1, 3], native: true }, // attention's head split
    { shape: [8, 4, 109, 32], perm: [0, 1, 3, 2], native: true }, // kᵀ: innermost dimension strided
    { shape: [128, 261], perm: [1, 0], native: true },
    { shape: [2, 1, 3, 1, 5], perm: [4, 3, 2, 1, 0], native: true }, // size-1 dimensions dropped
    { shape: [2, 3, 4, 5, 6], perm: [0, 1, 4, 2, 3], native: true }, // five dimensions that merge to four
    { shape: [2, 3, 2, 3, 2], perm: [4, 3, 2, 1, 0], native: false }, // five that do not: the stock kernel
  ])('transpose $shape by $perm matches the definition for float32, int32 and bool', async ({ shape, perm, native }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => i);
    const before = nativeCalls.copy;
    const outs = await on('wasm', () => [
      tf.transpose(tf.tensor(values, shape), perm),
      tf.cast(tf.transpose(tf.tensor(values, shape, 'int32'), perm), 'float32'),
      tf.cast(
        tf.transpose(
          tf.tensor(
            values.map((v) => v % 3 === 0),
            shape,
            'bool',
          ),
          perm,
        ),
        'float32',
      ),
    ]);
    if (onNative()) expect(nativeCalls.copy - before, 'native copies (float32 and int32)').toBe(native ? 2 : 0);
    const strides = stridesOf(shape);
    const expected = gatherRef(
      perm.map((p) => shape[p]!),
      (index) => index.reduce((sum, i, k) => sum + i * strides[perm[k]!]!, 0),
      values,
    );
    expect(Array.from(outs[0]!)).toEqual(expected);
    expect(Array.from(outs[1]!)).toEqual(expected);
    expect(Array.from(outs[2]!)).toEqual(expected.map((v) => (v % 3 === 0 ? 1 : 0)));
  });

  it.each([
    {
      shape: [8, 32, 31, 3],
      paddings: [
        [0, 0],
        [0, 0],
        [1, 0],
        [0, 0],
      ],
      value: 0,
    }, // the structural loss's image-gradient backward
    {
      shape: [2, 3, 4],
      paddings: [
        [1, 2],
        [0, 3],
        [2, 1],
      ],
      value: -1.5,
    },
    { shape: [5], paddings: [[3, 0]], value: 7 },
    {
      shape: [2, 2, 2, 2, 2],
      paddings: [
        [1, 0],
        [0, 1],
        [1, 1],
        [1, 0],
        [2, 0],
      ],
      value: 0,
    }, // five dimensions, none merge: stock
  ])('pad $shape by $paddings with $value matches the definition for float32 and int32', async ({ shape, paddings, value }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => i + 1);
    const pads = paddings as [number, number][];
    const before = nativeCalls.copy;
    const outs = await on('wasm', () => [
      tf.pad(tf.tensor(values, shape), pads, value),
      tf.cast(tf.pad(tf.tensor(values, shape, 'int32'), pads, Math.trunc(value)), 'float32'),
    ]);
    if (onNative()) expect(nativeCalls.copy - before, 'native copies').toBe(shape.length > 4 ? 0 : 2);
    const strides = stridesOf(shape);
    const outShape = shape.map((d, k) => pads[k]![0] + d + pads[k]![1]);
    const at = (index: number[]) => {
      let flat = 0;
      for (const [k, i] of index.entries()) {
        const j = i - pads[k]![0];
        if (j < 0 || j >= shape[k]!) return null;
        flat += j * strides[k]!;
      }
      return flat;
    };
    expect(Array.from(outs[0]!)).toEqual(gatherRef(outShape, at, values, value));
    expect(Array.from(outs[1]!)).toEqual(gatherRef(outShape, at, values, Math.trunc(value)));
  });

  it('slice gradients (pads) and transpose gradients match cpu', async () => {
    await sameOnBoth(() => {
      const x = tf.tensor4d(randn(2 * 6 * 5 * 3, 5), [2, 6, 5, 3]);
      const w = tf.tensor4d(randn(2 * 5 * 5 * 3, 6), [2, 5, 5, 3]);
      const v = tf.tensor4d(randn(2 * 3 * 5 * 6, 7), [2, 3, 5, 6]);
      return tf.grads((t: tf.Tensor) =>
        tf.add(tf.sum(tf.mul(tf.slice(t, [0, 1, 0, 0], [2, 5, 5, 3]), w)), tf.sum(tf.mul(tf.transpose(t, [0, 3, 2, 1]), v))),
      )([x]);
    }, 1e-6);
  });
});

const AVG_POOL_FORWARD = [
  { b: 8, h: 32, w: 32, ch: 3, f: 3, s: 1, pad: 'valid', native: true }, // the structural loss's box filter
  { b: 2, h: 9, w: 7, ch: 3, f: 2, s: 2, pad: 'valid', native: true }, // its 2x downsampling, odd sizes (last row and column unused)
  { b: 4, h: 20, w: 24, ch: 16, f: 3, s: 2, pad: 'valid', native: true }, // threaded
  { b: 2, h: 7, w: 6, ch: 5, f: 3, s: 2, pad: 'same', native: false }, // padded windows: stock
] as const;
/** AvgPool on wasm against its definition; on the native path, checks whether the addon ran. */
async function avgPoolForwardMatches(c: (typeof AVG_POOL_FORWARD)[number], path: string): Promise<void> {
  const x = randn(c.b * c.h * c.w * c.ch, 92);
  const info = tf.backend_util.computePool2DInfo([c.b, c.h, c.w, c.ch], c.f, c.s, 1, c.pad);
  const [oh, ow] = [info.outHeight, info.outWidth];
  const before = nativeCalls.avgPool;
  const [got] = await on('wasm', () => [tf.avgPool(tf.tensor4d(x, [c.b, c.h, c.w, c.ch]), c.f, c.s, c.pad)]);
  if (path === 'native' && loadNative().addon != null) expect(nativeCalls.avgPool - before).toBe(c.native ? 1 : 0);
  // The mean of the window's pixels inside the input (tfjs leaves padding out of the count).
  const want = new Float64Array(c.b * oh * ow * c.ch);
  const { top, left } = info.padInfo;
  for (let n = 0; n < c.b; n++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let k = 0; k < c.ch; k++) {
          let sum = 0;
          let count = 0;
          for (let iy = oy * c.s - top; iy < oy * c.s - top + c.f; iy++)
            for (let ix = ox * c.s - left; ix < ox * c.s - left + c.f; ix++)
              if (iy >= 0 && iy < c.h && ix >= 0 && ix < c.w) {
                sum += x[((n * c.h + iy) * c.w + ix) * c.ch + k]!;
                count++;
              }
          want[((n * oh + oy) * ow + ox) * c.ch + k] = sum / count;
        }
  expectClose(got!, want, 1e-6);
}
describe.each(KERNEL_PATHS)('avg pool forward, $path kernels', ({ path, addon }) => {
  useKernelPath(path, addon, 'avgPool');
  it.each(AVG_POOL_FORWARD.filter((c) => c.native))('$f x $f / $s $pad on $b x $h x $w x $ch matches the definition', (c) =>
    avgPoolForwardMatches(c, path));
});
// Outside the counted blocks (their check wants a native call per test); the addon is loaded as initBackend left it.
it.each(
  AVG_POOL_FORWARD.filter((c) => !c.native),
)('avg pool forward with padded windows ($f x $f / $s $pad) runs the stock kernel and matches the definition', (c) =>
  avgPoolForwardMatches(c, 'native'));

describe.each(KERNEL_PATHS)('argmax, $path kernels', ({ path, addon }) => {
  useKernelPath(path, addon, 'argMax');
  /** tfjs's scan: the first element, replaced only by a strictly greater one. */
  const scan = (row: ArrayLike<number>) => {
    let best = row[0]!;
    let at = 0;
    for (let j = 1; j < row.length; j++)
      if (row[j]! > best) {
        best = row[j]!;
        at = j;
      }
    return at;
  };
  it('over the last axis: ties, NaN first and later, ±0, -Infinity rows, rows not a multiple of the vector width, threads', async () => {
    const cols = 37;
    const rows = 1000; // 37 000 elements: split over threads
    const x = Float32Array.from(randn(rows * cols, 93), (v) => Math.round(v * 4) / 4); // coarse values: many ties
    const special: [number, number[]][] = [
      [0, [Number.NaN, 5, 7]], // NaN first: index 0
      [1, [1, Number.NaN, 9, Number.NaN]], // NaN later never wins
      [2, new Array(cols).fill(Number.NEGATIVE_INFINITY)],
      [3, [-0, 0, -0, -1]],
      [4, [-1, -0, 0]],
      [5, [2, 2, 2]],
    ];
    for (const [r, vals] of special) {
      x.fill(-3, r * cols, (r + 1) * cols);
      x.set(vals, r * cols);
    }
    const before = nativeCalls.argMax;
    const [got, gotOther] = await on('wasm', () => [
      tf.cast(tf.argMax(tf.tensor2d(x, [rows, cols]), 1), 'float32'),
      tf.cast(tf.argMax(tf.tensor3d(x, [10, 100, cols]), 1), 'float32'), // not the last axis: stock
    ]);
    if (path === 'native' && loadNative().addon != null) expect(nativeCalls.argMax - before).toBe(1);
    expect(Array.from(got!)).toEqual(Array.from({ length: rows }, (_, r) => scan(x.subarray(r * cols, (r + 1) * cols))));
    expect(Array.from(got!.subarray(0, 6))).toEqual([0, 2, 0, 0, 1, 0]);
    const other: number[] = [];
    for (let b = 0; b < 10; b++)
      for (let c = 0; c < cols; c++) other.push(scan(Array.from({ length: 100 }, (_, i) => x[(b * 100 + i) * cols + c]!)));
    expect(Array.from(gotOther!)).toEqual(other);
  });
});

describe('other training gradients', () => {
  it('embedding gather: the table gradient sums dy per id (repeats included), ids out of range dropped by unsortedSegmentSum', async () => {
    const table = randn(10 * 4, 15);
    const ids = [3, 7, 3, 0, 9, 3];
    const dy = randn(ids.length * 4, 16);
    const [g, seg] = await sameOnBoth(() => [
      tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, 'int32')), tf.tensor2d(dy, [6, 4]))))(
        tf.tensor2d(table, [10, 4]),
      ),
      tf.unsortedSegmentSum(tf.tensor2d(dy, [6, 4]), tf.tensor1d([1, -1, 1, 2, 5, 0], 'int32'), 3),
    ]);
    const want = new Float64Array(40);
    ids.forEach((id, i) => {
      for (let c = 0; c < 4; c++) want[id * 4 + c]! += dy[i * 4 + c];
    });
    expectClose(g!, want);
    const wantSeg = new Float64Array(12);
    [1, -1, 1, 2, 5, 0].forEach((id, i) => {
      if (id < 0 || id >= 3) return;
      for (let c = 0; c < 4; c++) wantSeg[id * 4 + c]! += dy[i * 4 + c];
    });
    expectClose(seg!, wantSeg);
  });

  it('gather along axis 0 (rows of 12 and 20, 2-D indices with repeats, int32 tables) and along axis 1 matches the definition', async () => {
    const t3 = randn(10 * 3 * 4, 17);
    const t2 = randn(10 * 20, 18);
    const ids = [
      [9, 0, 4],
      [4, 4, 1],
    ];
    const [a, b, c, e] = await on('wasm', () => [
      tf.gather(tf.tensor3d(t3, [10, 3, 4]), tf.tensor2d(ids, [2, 3], 'int32')),
      tf.gather(tf.tensor2d(t2, [10, 20]), tf.tensor1d([7, 7, 2], 'int32')),
      tf.gather(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2], 'int32'), tf.tensor1d([2, 0], 'int32')),
      tf.gather(tf.tensor2d(t2, [10, 20]), tf.tensor1d([19, 3], 'int32'), 1),
    ]);
    const rows = (table: Float32Array, d: number, list: number[]) => list.flatMap((r) => Array.from(table.subarray(r * d, r * d + d)));
    expect(Array.from(a!)).toEqual(rows(t3, 12, ids.flat()));
    expect(Array.from(b!)).toEqual(rows(t2, 20, [7, 7, 2]));
    expect(Array.from(c!)).toEqual([5, 6, 1, 2]);
    expect(Array.from(e!)).toEqual(Array.from({ length: 10 }, (_, r) => [t2[r * 20 + 19]!, t2[r * 20 + 3]!]).flat());
  });

  it('unsortedSegmentSum with 2-D ids over rows of 3 sums in order and drops ids out of range', async () => {
    const x = randn(2 * 3 * 3, 19);
    const ids = [4, 0, 4, -2, 7, 0];
    // tfjs types segmentIds as 1-D; the kernel (like TensorFlow's) takes any prefix of x's shape.
    const ids2d = () => tf.tensor2d(ids, [2, 3], 'int32') as unknown as tf.Tensor1D;
    const [got] = await on('wasm', () => [tf.unsortedSegmentSum(tf.tensor3d(x, [2, 3, 3]), ids2d(), 5)]);
    const want = new Float64Array(15);
    ids.forEach((id, i) => {
      if (id < 0 || id >= 5) return;
      for (let c = 0; c < 3; c++) want[id * 3 + c]! += x[i * 3 + c];
    });
    expectClose(got!, want, 1e-6);
  });

  it('softmax cross-entropy: gradient is (softmax - onehot) / N', async () => {
    const [n, c] = [4, 5];
    const logits = randn(n * c, 17);
    const labels = [1, 4, 0, 2];
    const [g] = await sameOnBoth(() => [
      tf.grad((l: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(labels, 'int32'), c), l as tf.Tensor2D))(
        tf.tensor2d(logits, [n, c]),
      ),
    ]);
    for (let i = 0; i < n; i++) {
      const row = Array.from(logits.slice(i * c, i * c + c));
      const mx = Math.max(...row);
      const z = row.reduce((s, v) => s + Math.exp(v - mx), 0);
      for (let j = 0; j < c; j++) {
        const want = (Math.exp(row[j]! - mx) / z - (j === labels[i] ? 1 : 0)) / n;
        expect(g![i * c + j]!).toBeCloseTo(want, 5);
      }
    }
  });

  it('layer norm and RMS norm: gradients match cpu and central finite differences', async () => {
    const [n, d] = [3, 6];
    const x = randn(n * d, 18);
    const r = randn(n * d, 19);
    const layerNorm = (t: tf.Tensor) => {
      const { mean, variance } = tf.moments(t, -1, true);
      return tf.div(tf.sub(t, mean), tf.sqrt(tf.add(variance, 1e-5)));
    };
    const rmsNorm = (t: tf.Tensor) => tf.div(t, tf.sqrt(tf.add(tf.mean(tf.square(t), -1, true), 1e-6)));
    const loss = (norm: (t: tf.Tensor) => tf.Tensor) => (t: tf.Tensor) => tf.sum(tf.mul(norm(t), tf.tensor2d(r, [n, d])));
    const [gl, gr] = await sameOnBoth(() => [
      tf.grad(loss(layerNorm))(tf.tensor2d(x, [n, d])),
      tf.grad(loss(rmsNorm))(tf.tensor2d(x, [n, d])),
    ]);
    // Central differences in float64, by hand.
    const fd = (norm: 'layer' | 'rms', i: number) => {
      const f = (xs: Float64Array) => {
        let total = 0;
        for (let row = 0; row < n; row++) {
          const v = xs.slice(row * d, row * d + d);
          const mean = norm === 'layer' ? v.reduce((s, a) => s + a, 0) / d : 0;
          const second = v.reduce((s, a) => s + (a - mean) ** 2, 0) / d;
          const denom = Math.sqrt(second + (norm === 'layer' ? 1e-5 : 1e-6));
          for (let j = 0; j < d; j++) total += ((v[j]! - mean) / denom) * r[row * d + j]!;
        }
        return total;
      };
      const e = 1e-5;
      const plus = Float64Array.from(x);
      const minus = Float64Array.from(x);
      plus[i]! += e;
      minus[i]! -= e;
      return (f(plus) - f(minus)) / (2 * e);
    };
    for (let i = 0; i < n * d; i++) {
      expect(gl![i]!).toBeCloseTo(fd('layer', i), 3);
      expect(gr![i]!).toBeCloseTo(fd('rms', i), 3);
    }
  });

  it('GELU (tanh form and erf form): gradient matches the analytic derivative', async () => {
    const x = randn(20, 20);
    const c = Math.sqrt(2 / Math.PI);
    const geluTanh = (t: tf.Tensor) =>
      tf.mul(tf.mul(t, 0.5), tf.add(1, tf.tanh(tf.mul(c, tf.add(t, tf.mul(0.044715, tf.mul(t, tf.mul(t, t))))))));
    const geluErf = (t: tf.Tensor) => tf.mul(tf.mul(t, 0.5), tf.add(1, tf.erf(tf.div(t, Math.SQRT2))));
    const [gt, ge] = await sameOnBoth(() => [
      tf.grad((t: tf.Tensor) => tf.sum(geluTanh(t)))(tf.tensor1d(x)),
      tf.grad((t: tf.Tensor) => tf.sum(geluErf(t)))(tf.tensor1d(x)),
    ]);
    x.forEach((v, i) => {
      const u = c * (v + 0.044715 * v ** 3);
      const th = Math.tanh(u);
      const dTanh = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * c * (1 + 3 * 0.044715 * v * v);
      const dErf = 0.5 * (1 + erf(v / Math.SQRT2)) + (v * Math.exp((-v * v) / 2)) / Math.sqrt(2 * Math.PI);
      expect(gt![i]!).toBeCloseTo(dTanh, 4);
      expect(ge![i]!).toBeCloseTo(dErf, 3);
    });
  });

  it.each([
    { h: 3, w: 4, oh: 6, ow: 8, alignCorners: false, halfPixelCenters: false },
    { h: 3, w: 4, oh: 5, ow: 7, alignCorners: false, halfPixelCenters: true },
    { h: 3, w: 4, oh: 5, ow: 9, alignCorners: true, halfPixelCenters: false },
  ])('nearest upsampling $h x $w -> $oh x $ow (align $alignCorners, half-pixel $halfPixelCenters), batch 2 x 3 channels: gradient is the adjoint of the forward', async (c) => {
    const [b, ch] = [2, 3];
    const x = randn(b * c.h * c.w * ch, 21);
    const dy = randn(b * c.oh * c.ow * ch, 22);
    const f = () => {
      const xt = tf.tensor4d(x, [b, c.h, c.w, ch]);
      const up = (t: tf.Tensor) => tf.image.resizeNearestNeighbor(t as tf.Tensor4D, [c.oh, c.ow], c.alignCorners, c.halfPixelCenters);
      return [up(xt), tf.grad((t: tf.Tensor) => tf.sum(tf.mul(up(t), tf.tensor4d(dy, [b, c.oh, c.ow, ch]))))(xt)];
    };
    const [yW, gW] = await on('wasm', f);
    const [yC] = await on('cpu', f);
    expectClose(yW!, yC!);
    // <up(x), dy> = <x, grad>: holds for every x only if grad is the true adjoint.
    let lhs = 0;
    for (let i = 0; i < dy.length; i++) lhs += yW![i]! * dy[i]!;
    let rhs = 0;
    for (let i = 0; i < x.length; i++) rhs += x[i]! * gW![i]!;
    expect(Math.abs(lhs - rhs) / Math.abs(lhs)).toBeLessThan(1e-4);
    if (c.oh === 2 * c.h && c.ow === 2 * c.w) {
      // Plain x2: each input pixel's gradient is the sum of its 2x2 block of dy.
      for (let n = 0; n < b; n++)
        for (let i = 0; i < c.h; i++)
          for (let j = 0; j < c.w; j++)
            for (let k = 0; k < ch; k++) {
              let s = 0;
              for (const [di, dj] of [
                [0, 0],
                [0, 1],
                [1, 0],
                [1, 1],
              ])
                s += dy[((n * c.oh + 2 * i + di!) * c.ow + 2 * j + dj!) * ch + k]!;
              expect(gW![((n * c.h + i) * c.w + j) * ch + k]!).toBeCloseTo(s, 4);
            }
    }
  });

  it('avg pool and max pool gradients (batch 2, 3 channels) match cpu and their definitions', async () => {
    const [b, h, w, ch] = [2, 6, 5, 3];
    const x = randn(b * h * w * ch, 23);
    const dyAvg = randn(b * 3 * 2 * ch, 24);
    const dyMax = randn(b * 3 * 3 * ch, 25);
    const [gAvg, gMax] = await sameOnBoth(() => {
      const xt = tf.tensor4d(x, [b, h, w, ch]);
      // 'valid': tfjs 4.22's AvgPoolGrad divides partial 'same' windows by the full window size while
      // the forward divides by the valid count (both backends), so 'same' has no consistent definition.
      const lossAvg = (t: tf.Tensor) => tf.sum(tf.mul(tf.avgPool(t as tf.Tensor4D, 2, 2, 'valid'), tf.tensor4d(dyAvg, [b, 3, 2, ch])));
      const lossMax = (t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, 2, 2, 'same'), tf.tensor4d(dyMax, [b, 3, 3, ch])));
      return [tf.grad(lossAvg)(xt), tf.grad(lossMax)(xt)];
    });
    // 2x2/2 on 6x5: windows rows {0,1},{2,3},{4,5}, cols {0,1},{2,3}, and {4} for 'same' (max only).
    const wantAvg = new Float64Array(x.length);
    const wantMax = new Float64Array(x.length);
    for (let n = 0; n < b; n++)
      for (let oy = 0; oy < 3; oy++)
        for (let ox = 0; ox < 3; ox++)
          for (let k = 0; k < ch; k++) {
            const cells: number[] = [];
            for (let iy = 2 * oy; iy < Math.min(h, 2 * oy + 2); iy++)
              for (let ix = 2 * ox; ix < Math.min(w, 2 * ox + 2); ix++) cells.push(((n * h + iy) * w + ix) * ch + k);
            const o = ((n * 3 + oy) * 3 + ox) * ch + k;
            if (ox < 2) for (const i of cells) wantAvg[i]! += dyAvg[((n * 3 + oy) * 2 + ox) * ch + k]! / cells.length;
            const best = cells.reduce((bi, i) => (x[i]! > x[bi]! ? i : bi), cells[0]!);
            wantMax[best]! += dyMax[o];
          }
    expectClose(gAvg!, wantAvg);
    expectClose(gMax!, wantMax);
  });

  it('einsum runs on wasm (cpu kernel fallback) and matches a plain matmul', async () => {
    const a = randn(2 * 3 * 4, 26);
    const b = randn(2 * 4 * 5, 27);
    const [e, m] = await on('wasm', () => [
      tf.einsum('bij,bjk->bik', tf.tensor3d(a, [2, 3, 4]), tf.tensor3d(b, [2, 4, 5])),
      tf.matMul(tf.tensor3d(a, [2, 3, 4]), tf.tensor3d(b, [2, 4, 5])),
    ]);
    expectClose(e!, m!);
  });
});

describe('a conv + attention + embedding network', () => {
  // Tiny image-to-token model: embed ids, conv encoder (stride 2), nearest upsample, attention over
  // the grid tokens, a head; trained with softmax cross-entropy.
  const V = 12;
  const C = 8;
  function makeParams() {
    const init = (shape: number[], seed: number, scale: number) => {
      const t = tf.tidy(() => tf.mul(tf.tensor(randn(size(shape), seed), shape), scale));
      const v = tf.variable(t);
      t.dispose();
      return v;
    };
    return {
      emb: init([V, C], 30, 0.3) as tf.Variable<tf.Rank.R2>,
      conv1: init([3, 3, 3, C], 31, 0.3) as tf.Variable<tf.Rank.R4>,
      conv2: init([4, 4, C, C], 32, 0.15) as tf.Variable<tf.Rank.R4>,
      wqkv: init([C, 3 * C], 33, 0.3) as tf.Variable<tf.Rank.R2>,
      head: init([C, V], 34, 0.3) as tf.Variable<tf.Rank.R2>,
    };
  }
  type Params = ReturnType<typeof makeParams>;
  const images = randn(2 * 8 * 8 * 3, 35);
  const ids = [1, 4, 4, 7, 0, 11, 3, 2];
  const labels = [4, 7, 0, 11, 3, 2, 9, 5];

  function loss(p: Params): tf.Scalar {
    const x = tf.tensor4d(images, [2, 8, 8, 3]);
    let h = tf.relu(tf.conv2d(x, p.conv1, 2, 'same')); // [2, 4, 4, C]
    // Nearest x2 upsampling as a broadcast, not resizeNearestNeighbor: the cpu reference's gradient
    // of that is wrong for batch > 1 (the wasm one is checked by the adjoint test above).
    const wide = tf.reshape(tf.broadcastTo(tf.reshape(h, [32, 1, C]), [32, 2, C]), [8, 1, 8 * C]); // columns doubled
    h = tf.reshape(tf.broadcastTo(wide, [8, 2, 8 * C]), [2, 8, 8, C]); // rows doubled
    h = tf.conv2d(h, p.conv2, 2, 'same'); // [2, 4, 4, C]
    const grid = tf.reshape(h, [2, 16, C]);
    const tok = tf.reshape(tf.gather(p.emb, tf.tensor1d(ids, 'int32')), [2, 4, C]);
    const seq = tf.concat([grid, tok], 1); // [2, 20, C]
    const [q, k, v] = tf.split(tf.matMul(tf.reshape(seq, [40, C]), p.wqkv), 3, 1).map((t) => tf.reshape(t, [2, 20, C]));
    const att = tf.matMul(tf.softmax(tf.div(tf.matMul(q!, k!, false, true), Math.sqrt(C))), v!); // [2, 20, C]
    const out = tf.slice(tf.add(att, seq), [0, 16, 0], [2, 4, C]); // the token positions
    const logits = tf.matMul(tf.reshape(out, [8, C]), p.head);
    return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(labels, 'int32'), V), logits) as tf.Scalar;
  }

  it('has the same gradients on wasm (2 threads) and cpu, trains on wasm, and leaks nothing', async () => {
    const grads: Record<string, Float32Array>[] = [];
    for (const backend of ['cpu', 'wasm'] as const) {
      await tf.setBackend(backend);
      const p = makeParams();
      const { grads: g, value } = tf.variableGrads(() => loss(p), Object.values(p));
      const out: Record<string, Float32Array> = {};
      for (const [name, v] of Object.entries(p)) out[name] = Float32Array.from(await g[v.name]!.data());
      tf.dispose([value, ...Object.values(g)]);
      grads.push(out);
      if (backend === 'wasm') {
        const opt = tf.train.adam(0.05);
        const wasmBackend = tf.backend();
        const losses: number[] = [];
        let before = 0;
        for (let step = 0; step < 6; step++) {
          const l = opt.minimize(() => loss(p), true) as tf.Scalar;
          losses.push((await l.data())[0]!);
          l.dispose();
          // Nothing may pile up inside the wasm backend either (kernels dispose their temporaries).
          if (step === 1) before = wasmBackend.numDataIds();
          if (step > 1) expect(wasmBackend.numDataIds()).toBe(before);
        }
        expect(losses[5]!).toBeLessThan(losses[0]! * 0.8);
        opt.dispose();
      }
      tf.dispose(Object.values(p));
      await tf.setBackend('cpu');
    }
    for (const name of Object.keys(grads[0]!)) {
      const e = maxRelErr(grads[1]![name]!, grads[0]![name]!);
      expect(e, `gradient of ${name}`).toBeLessThan(5e-4);
    }
  });
});

// Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7), for the erf-GELU derivative.
function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * a);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a);
  return s * y;
}

describe('identity and denormals', () => {
  it('Identity shares memory: a clone outlives its source, and both free their memory', async () => {
    await tf.setBackend('wasm');
    try {
      const before = tf.memory().numBytes;
      const x = tf.tensor1d([1, 2, 3, 4]);
      const y = tf.clone(x);
      expect(y.dataId).toBe(x.dataId);
      x.dispose();
      expect(Array.from(await y.data())).toEqual([1, 2, 3, 4]);
      y.dispose();
      expect(tf.memory().numBytes).toBe(before);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('Cast to the same dtype shares memory; real conversions still convert', async () => {
    await tf.setBackend('wasm');
    try {
      const x = tf.tensor1d([1.5, -2.25, 3]);
      const same = tf.cast(x, 'float32');
      expect(same.dataId).toBe(x.dataId);
      x.dispose();
      expect(Array.from(await same.data())).toEqual([1.5, -2.25, 3]);
      const toInt = tf.cast(same, 'int32');
      const mask = tf.tidy(() => tf.cast(tf.greater(same, 0), 'float32'));
      expect(toInt.dataId).not.toBe(same.dataId);
      expect(Array.from(await toInt.data())).toEqual([1, -2, 3]);
      expect(Array.from(await mask.data())).toEqual([1, 0, 1]);
      tf.dispose([same, toInt, mask]);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('native kernels flush denormal products to zero; pure WASM and JavaScript arithmetic keep denormals', async () => {
    const tiny = 1e-20; // tiny * tiny = 1e-40: a float32 denormal
    const products = () => [tf.matMul(tf.fill([4, 4], tiny), tf.fill([4, 4], tiny)), tf.mul(tf.fill([3], tiny), tf.scalar(tiny))];
    const [matmul, mul] = await on('wasm', products);
    const saved = activeNativeAddon();
    setNativeAddon(null);
    const [wasmMatmul, wasmMul] = await on('wasm', products).finally(() => setNativeAddon(saved));
    if (loadNative().addon != null) {
      expect(Array.from(matmul!)).toEqual(new Array(16).fill(0));
      expect(Array.from(mul!)).toEqual([0, 0, 0]);
    }
    for (const v of [...wasmMatmul!, ...wasmMul!]) {
      expect(v).toBeGreaterThan(0);
      expect(v).toBeLessThan(1.2e-38);
    }
    // The calling thread's floating-point mode is restored: doubles still go denormal.
    expect(Number.MIN_VALUE * 2).toBe(2 * 5e-324);
  });
});

describe.each(KERNEL_PATHS)('slice, split and concat read the heap in place, $path kernels', ({ path, addon }) => {
  useKernelPath(path, addon, 'copy');
  it.each([
    { shape: [10], begin: [3], size: [5] },
    { shape: [4, 6], begin: [1, 2], size: [2, 3] },
    { shape: [4, 6], begin: [1, 0], size: [2, 6] },
    { shape: [2, 3, 40], begin: [1, 1, 5], size: [1, 2, 30] },
    { shape: [3, 4, 5, 6], begin: [0, 1, 2, 3], size: [3, 2, 3, 2] },
    { shape: [2, 3, 2, 4, 5], begin: [1, 0, 1, 1, 0], size: [1, 3, 1, 2, 5] },
    { shape: [2, 5, 4, 3], begin: [0, 1, 0, 0], size: [2, 4, 4, 3] }, // image rows from the second: runs of whole rows
    { shape: [2, 5, 4, 3], begin: [0, 0, 1, 0], size: [2, 5, 3, 3] }, // columns from the second: runs of 3 pixels
  ])('slice $shape at $begin size $size matches cpu for float32, int32 and bool', async ({ shape, begin, size }) => {
    const values = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i);
    const outs = await sameOnBoth(() => [
      tf.slice(tf.tensor(values, shape), begin, size),
      tf.cast(tf.slice(tf.tensor(values, shape, 'int32'), begin, size), 'float32'),
      tf.cast(
        tf.slice(
          tf.tensor(
            values.map((v) => v % 3 === 0),
            shape,
            'bool',
          ),
          begin,
          size,
        ),
        'float32',
      ),
    ]);
    // Element (i0, i1, …) of the slice is element (begin + i) of the input, i.e. its flat index.
    const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
    const expected: number[] = [];
    const walk = (d: number, flat: number) => {
      if (d === shape.length) return void expected.push(flat);
      for (let i = 0; i < size[d]!; i++) walk(d + 1, flat + (begin[d]! + i) * strides[d]!);
    };
    walk(0, 0);
    expect(Array.from(outs[0]!)).toEqual(expected);
    expect(Array.from(outs[1]!)).toEqual(expected);
    expect(Array.from(outs[2]!)).toEqual(expected.map((v) => (v % 3 === 0 ? 1 : 0)));
  });

  it.each([
    {
      shapes: [
        [2048, 1, 32],
        [2048, 1, 32],
      ],
      axis: 1,
    },
    {
      shapes: [
        [3, 2, 100],
        [3, 1, 100],
        [3, 4, 100],
      ],
      axis: 1,
    },
    {
      shapes: [
        [2, 5],
        [2, 0],
        [2, 3],
      ],
      axis: 1,
    }, // an empty input
    {
      shapes: [
        [4, 3],
        [2, 3],
      ],
      axis: 0,
    },
    {
      shapes: [
        [2, 3, 70],
        [2, 3, 1],
      ],
      axis: -1,
    },
  ])('concat of $shapes on axis $axis matches the element-by-element layout for float32, int32 and bool', async ({ shapes, axis }) => {
    const offsets = shapes.map((_, i) => shapes.slice(0, i).reduce((a, s) => a + s.reduce((p, d) => p * d, 1), 0));
    const values = shapes.map((s, i) => Array.from({ length: s.reduce((a, b) => a * b, 1) }, (_, k) => offsets[i]! + k));
    const outs = await on('wasm', () => [
      tf.concat(
        shapes.map((s, i) => tf.tensor(values[i]!, s)),
        axis,
      ),
      tf.cast(
        tf.concat(
          shapes.map((s, i) => tf.tensor(values[i]!, s, 'int32')),
          axis,
        ),
        'float32',
      ),
      tf.cast(
        tf.concat(
          shapes.map((s, i) =>
            tf.tensor(
              values[i]!.map((v) => v % 3 === 0),
              s,
              'bool',
            ),
          ),
          axis,
        ),
        'float32',
      ),
    ]);
    // Expected: for each index over the axes before `axis`, each input's block of the rest in turn.
    const ax = axis < 0 ? axis + shapes[0]!.length : axis;
    const outer = shapes[0]!.slice(0, ax).reduce((a, b) => a * b, 1);
    const expected: number[] = [];
    for (let b = 0; b < outer; b++)
      for (const [i, s] of shapes.entries()) {
        const run = s.slice(ax).reduce((a, d) => a * d, 1);
        for (let k = 0; k < run; k++) expected.push(values[i]![b * run + k]!);
      }
    expect(Array.from(outs[0]!)).toEqual(expected);
    expect(Array.from(outs[1]!)).toEqual(expected);
    expect(Array.from(outs[2]!)).toEqual(expected.map((v) => (v % 3 === 0 ? 1 : 0)));
  });

  it('splits into many uneven parts along any axis, and the split gradient concatenates', async () => {
    const sizes = Array.from({ length: 40 }, (_, i) => 1 + (i % 5));
    const n = sizes.reduce((a, b) => a + b, 0);
    const flat = Array.from({ length: n }, (_, i) => i);
    const parts = await on('wasm', () => tf.split(tf.tensor1d(flat), sizes));
    let offset = 0;
    for (const [i, p] of parts.entries()) {
      expect(Array.from(p), `part ${i}`).toEqual(flat.slice(offset, offset + sizes[i]!));
      offset += sizes[i]!;
    }
    await sameOnBoth(() =>
      tf.split(
        tf.tensor3d(
          Array.from({ length: 4 * 6 * 5 }, (_, i) => i),
          [4, 6, 5],
        ),
        [1, 3, 2],
        1,
      ),
    );
    await sameOnBoth(() => {
      const x = tf.tensor2d(
        Array.from({ length: 6 * 4 }, (_, i) => i / 7),
        [6, 4],
      );
      const w = tf.tensor2d(
        Array.from({ length: 6 * 4 }, (_, i) => Math.sin(i)),
        [6, 4],
      );
      const g = tf.grad((t: tf.Tensor) => {
        const [a, b] = tf.split(t, [2, 4], 0);
        return tf.add(tf.sum(tf.mul(a!, tf.slice(w, [0, 0], [2, 4]))), tf.sum(tf.square(b!)));
      })(x);
      return [g];
    });
  });
});
