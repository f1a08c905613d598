// The default thread split with the native kernels: WASM single-threaded, the native pool on all
// cores. Its own file: the wasm backend starts once per process with fixed threads.
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, expect, it } from 'vitest';
import { doctor, formatDoctorReport } from '../doctor';
import { initBackend } from '../init';
import { chooseVariant, loadNative } from './load';

afterAll(async () => {
  await tf.setBackend('cpu');
});

it('gives the native kernels every core and runs WASM single-threaded, unless told otherwise; doctor says so', async () => {
  const report = await initBackend({ backend: 'wasm' });
  const cores = os.availableParallelism();
  const text = formatDoctorReport(await doctor({ backend: 'wasm' }));
  if (loadNative().addon != null) {
    expect(report.threads).toBe(1);
    expect(report.native).toMatchObject({ loaded: true, threads: cores });
    expect(text).toMatch(new RegExp(`native {7}avx(2|512), ${cores} threads`));
  } else {
    expect(report.threads).toBe(cores);
    expect(report.native?.loaded).toBe(false);
    expect(text).toMatch(/native {7}off: /);
  }
  await tf.setBackend('cpu');
});

it('loadNative reports the same result on every call', () => {
  expect(loadNative()).toBe(loadNative());
  const status = loadNative().status;
  if (status.loaded) expect(status.detail).toMatch(/ettjs-native\.avx(2|512)\.node$/);
  else expect(status.detail.length).toBeGreaterThan(10);
});

// Spin 0: workers always sleep on the condition variable; 1 µs: the spin runs out between most jobs
// (the spin-then-sleep hand-over); 200 µs (the default): workers catch the next job while spinning.
it.each([0, 1, 200])('runs thousands of back-to-back pool jobs of changing sizes, each task exactly once (spin %i µs)', (spin) => {
  const addon = loadNative().addon;
  if (addon == null) return; // nothing native on this machine: the JS kernels have their own tests
  addon.setThreads(Math.max(2, os.availableParallelism()));
  const previousSpin = addon.setSpin(spin);
  expect(addon.setSpin(spin)).toBe(spin);
  // A GroupNorm forward with B samples is B pool tasks; dy = 1 backward sums into dbeta[c] = B·H·W
  // exactly, so a task run twice (or skipped) shows in dbeta. Sizes alternate so that a stale
  // worker's index of one run is a valid index of the next (the race this guards against).
  const [h, w, c] = [2, 2, 4];
  const heap = new Float32Array(4 * 16 * h * w * c + 3 * c + 64);
  heap.fill(1);
  for (let round = 0; round < 3000; round++) {
    const b = round % 2 === 0 ? 3 + (round % 5) : 9 + (round % 8);
    const n = b * h * w * c;
    const [x, gamma, beta, dy, out, dg, db] = [0, n, n + c, n + 2 * c, 2 * n + 2 * c, 3 * n + 2 * c, 3 * n + 3 * c];
    for (let i = 0; i < n; i++) heap[x + i] = (i % 7) - 3;
    heap.fill(1, gamma, gamma + c);
    heap.fill(0, beta, beta + c);
    heap.fill(1, dy, dy + n);
    addon.groupNorm(1, heap, x, gamma, beta, dy, out, dg, db, b, h * w, c, 2, 0, 1e-5);
    for (let k = 0; k < c; k++)
      if (heap[db + k] !== b * h * w) expect.fail(`round ${round}: dbeta[${k}] = ${heap[db + k]}, expected ${b * h * w}`);
  }
  addon.setSpin(previousSpin);
});

it('picks the best build the CPU runs, or the one ETT_NATIVE_ISA names, and says why not', () => {
  const avx2 = new Set(['avx2', 'fma', 'bmi1', 'bmi2', 'f16c', 'movbe']);
  const avx512 = new Set([...avx2, 'avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl']);
  expect(chooseVariant(avx512, {})).toEqual({ isa: 'avx512' });
  expect(chooseVariant(avx2, {})).toEqual({ isa: 'avx2' });
  expect(chooseVariant(avx512, { ETT_NATIVE_ISA: 'AVX2' })).toEqual({ isa: 'avx2' });
  expect(chooseVariant(avx2, { ETT_NATIVE_ISA: 'avx512' })).toEqual({ reason: expect.stringMatching(/lacks what the avx512 build needs/) });
  expect(chooseVariant(avx512, { ETT_NATIVE_ISA: 'sse' })).toEqual({
    reason: expect.stringMatching(/sse is not a build \(avx512, avx2\)/),
  });
  expect(chooseVariant(new Set(['sse2']), {})).toEqual({ reason: expect.stringMatching(/lacks AVX2\+FMA/) });
  expect(chooseVariant(null, {})).toEqual({ reason: expect.stringMatching(/unreadable/) });
});

// Where tfjs puts a tensor in the wasm heap is up to its allocator, so a product must not depend on
// it: a 5-token LM's attention (m + n + k < 20, where Eigen switches to coefficient-wise products
// vectorized from the operands' alignment) came out 1e-6 different in its first forward pass.
it.each([
  [1, 5, 4, 5, false, false],
  [4, 5, 5, 4, false, false], // the LM's attention probabilities times V
  [4, 5, 5, 4, false, true],
  [1, 5, 16, 16, true, false],
  [2, 64, 48, 40, false, true],
])('gemm (batch %i, %i x %i x %i, transposes %s, %s) gives the same bits at every operand offset', (g, m, k, n, ta, tb) => {
  const addon = loadNative().addon;
  if (addon == null) return; // nothing native on this machine
  const a = Float32Array.from({ length: g * m * k }, (_, i) => Math.sin(i * 1.7) * 3);
  const b = Float32Array.from({ length: g * k * n }, (_, i) => Math.cos(i * 0.9));
  const heap = new Float32Array(a.length + b.length + g * m * n + 64);
  let first: number[] | null = null;
  // A, B and C each at every float offset 0-7 of its own region: alignments mod 32 bytes, in every combination.
  for (let shift = 0; shift < 512; shift++) {
    const ao = shift % 8;
    const bo = 16 + a.length + (Math.floor(shift / 8) % 8);
    const co = 32 + a.length + b.length + Math.floor(shift / 64);
    heap.set(a, ao);
    heap.set(b, bo);
    addon.gemm(heap, ao, bo, co, g, m, n, k, ta ? 1 : 0, tb ? 1 : 0, m * k, k * n);
    const c = Array.from(heap.subarray(co, co + g * m * n));
    if (first == null) first = c;
    else if (c.some((v, i) => v !== first![i])) expect.fail(`offsets A ${ao}, B ${bo}, C ${co}: different bits`);
  }
  // And the products themselves, against float64 sums.
  for (let q = 0; q < g; q++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[q * m * k + (ta ? p * m + i : i * k + p)]! * b[q * k * n + (tb ? j * k + p : p * n + j)]!;
        expect(Math.abs(first![(q * m + i) * n + j]! - s)).toBeLessThan(1e-5 * (1 + Math.abs(s)) * k);
      }
});
