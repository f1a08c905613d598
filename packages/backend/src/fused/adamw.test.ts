// The fused AdamW kernel on cpu and wasm against a float64 reference written here from the
// definition, and bit for bit against the same update composed of tfjs ops (what @ettjs/core runs
// where the kernel is absent).
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClose, randn, runOn } from '../../test/reference';
import { initBackend } from '../init';
import { countingAddon, fusedKernelPaths, usePathAddon } from '../../test/native-paths';
import { ADAMW } from './adamw';

// Three paths: cpu's JavaScript loops, wasm on the native addon (counted: a silent fallback to the
// JavaScript loops fails the test), and wasm without it.
const native = countingAddon(['adamw']);
const PATHS = fusedKernelPaths(native.addon);

beforeAll(async () => {
  await initBackend({ backend: 'wasm' });
  await tf.setBackend('cpu');
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

// Parameter sizes: a scalar, odd sizes, and one above 2^15 elements.
const SHAPES = [[], [3], [7, 5], [2, 3, 4], [40000]];
const H = { b1: 0.9, b2: 0.999, eps: 1e-8, lr: 3e-3, weightDecay: 0.05, step: 3 };
const attrs = () => ({
  count: SHAPES.length,
  b1: H.b1,
  b2: H.b2,
  eps: H.eps,
  decay: 1 - H.lr * H.weightDecay,
  stepSize: H.lr / (1 - H.b1 ** H.step),
  bc2Sqrt: Math.sqrt(1 - H.b2 ** H.step),
});
const data = SHAPES.map((s, i) => {
  const n = s.reduce((a, b) => a * b, 1);
  return {
    p: randn(n, 10 + i),
    g: Float32Array.from(randn(n, 20 + i), (v) => 0.1 * v),
    m: Float32Array.from(randn(n, 30 + i), (v) => 0.01 * v),
    v: Float32Array.from(randn(n, 40 + i), (v) => 1e-4 * v * v),
  };
});
const tensors = () =>
  data.map(
    (d, i) =>
      (['p', 'g', 'm', 'v'] as const).map((k) => tf.tensor(d[k], SHAPES[i], 'float32')) as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor],
  );

/** The kernel's named inputs: p<i>, g<i>, m<i>, v<i>. */
function kernelInputs(ts: tf.Tensor[][]): tf.NamedTensorMap {
  const inputs: tf.NamedTensorMap = {};
  for (const [i, [p, g, m, v]] of ts.entries()) Object.assign(inputs, { [`p${i}`]: p, [`g${i}`]: g, [`m${i}`]: m, [`v${i}`]: v });
  return inputs;
}

/** The kernel's outputs [m', v', p'] per parameter. */
function fused(): tf.Tensor[] {
  return tf.engine().runKernel(ADAMW, kernelInputs(tensors()), attrs() as unknown as tf.NamedAttrMap) as tf.Tensor[];
}

/** The same update composed of tfjs ops, as @ettjs/core's AdamW writes it without the kernel. */
function composed(): tf.Tensor[] {
  const a = attrs();
  return tensors().flatMap(([p, g, m, v]) => {
    const mNew = tf.add(tf.mul(m, a.b1), tf.mul(g, 1 - a.b1));
    const vNew = tf.add(tf.mul(v, a.b2), tf.mul(tf.square(g), 1 - a.b2));
    const denom = tf.add(tf.div(tf.sqrt(vNew), a.bc2Sqrt), a.eps);
    return [mNew, vNew, tf.sub(tf.mul(p, a.decay), tf.mul(tf.div(mNew, denom), a.stepSize))];
  });
}

describe.each(PATHS)('fused AdamW on $name', ({ backend, addon }) => {
  const wanted = usePathAddon(addon, native.calls, 'adamw');

  it('matches a float64 AdamW step (decoupled decay, bias corrections) for every parameter, shapes kept', async () => {
    const out = await runOn(backend, 'cpu', fused);
    if (wanted() != null) expect(native.calls.adamw).toBe(1);
    const a = attrs();
    data.forEach((d, i) => {
      const n = d.p.length;
      const m = new Float64Array(n);
      const v = new Float64Array(n);
      const p = new Float64Array(n);
      for (let k = 0; k < n; k++) {
        m[k] = H.b1 * d.m[k]! + (1 - H.b1) * d.g[k]!;
        v[k] = H.b2 * d.v[k]! + (1 - H.b2) * d.g[k]! ** 2;
        // torch.optim.AdamW: p ← p(1 − lr·wd) − lr/(1 − b1^t) · m / (sqrt(v)/sqrt(1 − b2^t) + eps)
        p[k] = d.p[k]! * (1 - H.lr * H.weightDecay) - a.stepSize * (m[k]! / (Math.sqrt(v[k]!) / a.bc2Sqrt + H.eps));
      }
      expectClose(out[3 * i]!, m, 1e-6);
      expectClose(out[3 * i + 1]!, v, 1e-6);
      expectClose(out[3 * i + 2]!, p, 1e-6);
    });
  });

  it('agrees with the tfjs-op composition (bit for bit in JavaScript; within float rounding natively)', async () => {
    const got = await runOn(backend, 'cpu', fused);
    const want = await runOn(backend, 'cpu', composed);
    for (const [i, w] of want.entries()) {
      if (wanted() == null) expect(Array.from(got[i]!)).toEqual(Array.from(w));
      else expectClose(got[i]!, w, 1e-6);
    }
  });

  it('leaves its inputs untouched and leaks nothing', async () => {
    await tf.setBackend(backend);
    try {
      const ts = tensors();
      const before = tf.memory().numTensors;
      const outs = tf.engine().runKernel(ADAMW, kernelInputs(ts), attrs() as unknown as tf.NamedAttrMap) as tf.Tensor[];
      expect(outs.map((t) => t.shape)).toEqual(SHAPES.flatMap((s) => [s, s, s]));
      expect(tf.memory().numTensors).toBe(before + 3 * SHAPES.length);
      expect(Array.from(await ts[4]![0].data())).toEqual(Array.from(data[4]!.p));
      expect(Array.from(await ts[4]![2].data())).toEqual(Array.from(data[4]!.m));
      tf.dispose([...outs, ...ts.flat()]);
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('names the parameter whose tensors do not fit', async () => {
    await tf.setBackend(backend);
    try {
      const [p, g, m] = [tf.zeros([3]), tf.zeros([4]), tf.zeros([3])];
      expect(() =>
        tf.engine().runKernel(ADAMW, { p0: p, g0: g, m0: m, v0: m }, { ...attrs(), count: 1 } as unknown as tf.NamedAttrMap),
      ).toThrow(/parameter 0 needs float32 p0, g0, m0, v0 of one size/);
      tf.dispose([p, g, m]);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});
