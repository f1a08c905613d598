// The default thread split with the native kernels: WASM single-threaded, the native pool on all
// cores. Its own file: the wasm backend starts once per process with fixed threads.
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, expect, it } from 'vitest';
import { doctor, formatDoctorReport } from '../doctor';
import { initBackend } from '../init';
import { loadNative } from './load';

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
