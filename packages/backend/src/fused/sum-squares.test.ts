// The fused Σ‖g‖² kernel behind @ettjs/core's globalNorm, on cpu, wasm and (where WebGPU starts; CI
// must have it) webgpu, against float64 sums written here.
import { globalNorm } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { expectClose, randn, runOn } from '../../test/reference';
import { countingAddon } from '../../test/native-paths';
import { initBackend } from '../init';
import { loadNative } from '../native/load';
import { activeNativeAddon, setNativeAddon } from '../wasm-kernels/native';
import { SUM_SQUARES } from './sum-squares';

const gpu = await initBackend({ backend: 'webgpu' }).then(
  () => null,
  (e: Error) => e,
);
if (gpu != null && process.env['CI']) throw new Error(`WebGPU did not start: ${gpu.message}`);
if (gpu != null) console.warn(`EttSumSquares on webgpu not tested: ${gpu.message}`);
await initBackend({ backend: 'wasm' });
await tf.setBackend('cpu');
afterAll(async () => {
  await tf.setBackend('cpu');
});

const BACKENDS = ['cpu', 'wasm', ...(gpu == null ? ['webgpu'] : [])];
const SHAPES = [[3], [4, 5], [2, 3, 4, 5], [1], [7, 9], ...Array.from({ length: 35 }, (_, i) => [i + 2])];

describe.each(BACKENDS)('EttSumSquares on %s', (backend) => {
  it('equals the float64 sum of squares of 40 tensors, and globalNorm runs it once', async () => {
    // Values up to ~1e3 with a wide spread: float32 squares summed in float64 lose nothing visible.
    const values = SHAPES.map((s, i) => Float32Array.from(randn(tf.util.sizeFromShape(s), 20 + i), (v, k) => v * 10 ** (k % 4)));
    let calls = 0;
    const kernel = tf.getKernel(SUM_SQUARES, backend)!;
    const run = kernel.kernelFunc;
    kernel.kernelFunc = (args) => {
      calls++;
      return run(args);
    };
    try {
      const [direct, norm] = await runOn(backend, 'cpu', () => {
        const ts = SHAPES.map((s, i) => tf.tensor(values[i]!, s));
        return [
          tf.engine().runKernel(SUM_SQUARES, ts as unknown as tf.NamedTensorMap, {}) as tf.Tensor,
          globalNorm(Object.fromEntries(ts.map((t, i) => [`p${i}`, t]))),
        ];
      });
      let want = 0;
      for (const v of values) for (const x of v) want += x * x;
      expectClose(direct!, [want], 1e-6);
      expectClose(norm!, [Math.sqrt(want)], 1e-6);
      expect(calls).toBe(2);
    } finally {
      kernel.kernelFunc = run;
    }
  });

  it('differentiates: the gradient of globalNorm is g / ‖g‖', async () => {
    const a = randn(6, 31);
    const b = randn(4, 32);
    const [ga, gb] = await runOn(backend, 'cpu', () => {
      const [ta, tb] = [tf.tensor1d(a), tf.tensor2d(b, [2, 2])];
      return tf.grads((x: tf.Tensor, y: tf.Tensor) => globalNorm({ x, y }))([ta, tb]);
    });
    const norm = Math.sqrt([...a, ...b].reduce((s, v) => s + v * v, 0));
    expectClose(
      ga!,
      Array.from(a, (v) => v / norm),
      1e-5,
    );
    expectClose(
      gb!,
      Array.from(b, (v) => v / norm),
      1e-5,
    );
  });

  it('leaves no tensors behind and rejects a non-float32 input by name', async () => {
    await tf.setBackend(backend);
    try {
      const a = tf.tensor1d([3, 4]);
      const b = tf.tensor2d([[12]]);
      const before = tf.memory().numTensors;
      const n = globalNorm({ a, b });
      expect(tf.memory().numTensors).toBe(before + 1);
      expect((await n.data())[0]).toBeCloseTo(13, 5);
      const i = tf.tensor1d([1, 2], 'int32');
      expect(() => tf.engine().runKernel(SUM_SQUARES, [a, i] as unknown as tf.NamedTensorMap, {})).toThrow(
        /input 1 must be a float32 tensor/,
      );
      tf.dispose([a, b, n, i]);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});

describe('EttSumSquares on wasm: the native addon and the JavaScript loop', () => {
  it('the addon runs it where it loads, and both paths give the float64 sum', async () => {
    const counted = countingAddon(['sumSquares']);
    const values = SHAPES.map((s, i) => Float32Array.from(randn(tf.util.sizeFromShape(s), 80 + i), (v, k) => v * 10 ** (k % 3)));
    let want = 0;
    for (const v of values) for (const x of v) want += x * x;
    const saved = activeNativeAddon();
    try {
      for (const addon of [counted.addon(), null]) {
        setNativeAddon(addon);
        const [got] = await runOn('wasm', 'cpu', () => [
          tf
            .engine()
            .runKernel(SUM_SQUARES, values.map((v, i) => tf.tensor(v, SHAPES[i]!)) as unknown as tf.NamedTensorMap, {}) as tf.Tensor,
        ]);
        expectClose(got!, [want], 1e-6);
      }
      if (loadNative().addon != null) expect(counted.calls.sumSquares).toBe(1);
    } finally {
      setNativeAddon(saved);
    }
  });
});
