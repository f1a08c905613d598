// The linear-time tape filter: against a brute-force definition of "on a path from x to y", and the
// patched engine's gradients against tfjs-core's own implementation (kept by installLinearTapeFilter)
// on graphs with constants, dead branches, multi-output ops, customGrad and second derivatives.
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import './index';
import { filterTape, installLinearTapeFilter, type TapeNode } from './tape';

const stock = installLinearTapeFilter();

function fakeTensor(id: number): tf.Tensor {
  return { id } as unknown as tf.Tensor;
}

/** "Depends on an x" and "y depends on it" by fixed-point iteration over the whole tape. */
function bruteForce(tape: TapeNode[], xs: number[], y: number): number[] {
  const fromX = new Set(xs);
  for (let changed = true; changed; ) {
    changed = false;
    for (const n of tape) {
      if (Object.values(n.inputs).some((t) => fromX.has(t.id)) && n.outputs.some((o) => !fromX.has(o.id))) {
        for (const o of n.outputs) fromX.add(o.id);
        changed = true;
      }
    }
  }
  const toY = new Set([y]);
  for (let changed = true; changed; ) {
    changed = false;
    for (const n of tape) {
      if (n.outputs.some((o) => toY.has(o.id)) && Object.values(n.inputs).some((t) => !toY.has(t.id))) {
        for (const t of Object.values(n.inputs)) toY.add(t.id);
        changed = true;
      }
    }
  }
  return tape.filter((n) => Object.values(n.inputs).some((t) => fromX.has(t.id)) && n.outputs.some((o) => toY.has(o.id))).map((n) => n.id);
}

describe('filterTape', () => {
  it('keeps exactly the nodes on a path from an x to y, in tape order, with only their inputs from the xs', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let trial = 0; trial < 30; trial++) {
      // Tensors 0..9 exist before the tape (the xs are drawn from them, the rest are constants);
      // node k reads 1-3 earlier tensors and writes 1-2 new ones.
      let next = 10;
      const tape: TapeNode[] = [];
      for (let k = 0; k < 60; k++) {
        const inputs: Record<string, tf.Tensor> = {};
        for (let j = 0, n = 1 + rand(3); j < n; j++) inputs[`in${j}`] = fakeTensor(rand(next));
        const outputs = Array.from({ length: 1 + rand(2) }, () => fakeTensor(next++));
        tape.push({ id: 100 + k, kernelName: 'Op', inputs, outputs });
      }
      const xs = [rand(10), rand(10), rand(10)];
      const y = next - 1 - rand(5);
      const kept = filterTape(tape, xs.map(fakeTensor), fakeTensor(y));
      expect(kept.map((n) => n.id)).toEqual(bruteForce(tape, xs, y));
      // Each kept node keeps the inputs that are xs or come from them, and no others.
      const fromX = new Set(xs);
      for (const m of tape) if (Object.values(m.inputs).some((t) => fromX.has(t.id))) for (const o of m.outputs) fromX.add(o.id);
      for (const n of kept) {
        const original = tape.find((m) => m.id === n.id)!;
        const expected = Object.keys(original.inputs).filter((k) => fromX.has(original.inputs[k]!.id));
        expect(Object.keys(n.inputs).sort()).toEqual(expected.sort());
        expect(n.outputs).toBe(original.outputs);
      }
    }
  });
});

describe('the engine with the linear tape filter', () => {
  const engine = tf.engine() as unknown as { gradients: typeof stock };

  /** Runs `f` through the patched and the stock gradients and returns both results' values. */
  async function both(f: () => tf.Tensor, xs: tf.Tensor[]) {
    const run = async (g: typeof stock) => {
      const { value, grads } = g.call(engine, f, xs);
      const out = { value: await value.array(), grads: await Promise.all(grads.map((t) => t?.array() ?? null)) };
      tf.dispose([value, ...grads.filter((t): t is tf.Tensor => t != null)]);
      return out;
    };
    return { patched: await run(engine.gradients), reference: await run(stock) };
  }

  it('is installed, and gives tfjs-core’s gradients bit for bit: constants, dead branches, split, customGrad', async () => {
    await tf.setBackend('cpu');
    expect(engine.gradients).not.toBe(stock);
    const a = tf.tensor2d([
      [0.5, -1.25, 2],
      [3, 0.75, -0.5],
    ]);
    const b = tf.tensor1d([1.5, -2, 0.25]);
    const c = tf.tensor2d([
      [2, 1, 0.5],
      [-1, 4, 3],
    ]); // a constant: not among the xs
    const square = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([x]);
      return { value: tf.mul(x, x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.mul(saved[0]!, 2)) };
    }) as (x: tf.Tensor) => tf.Tensor;
    const f = () => {
      const h = tf.add(tf.mul(a, c), b);
      const [left, right] = tf.split(tf.sin(h), [1, 2], 1);
      tf.exp(tf.mul(c, 3)); // a dead branch from a constant
      tf.neg(a); // a dead branch from an x
      return tf.add(tf.sum(square(left!)), tf.sum(tf.mul(right!, c.slice([0, 1], [2, 2]))));
    };
    const { patched, reference } = await both(f, [a, b]);
    expect(patched).toEqual(reference);
    // and the values are right: d/db of Σ sin(h)² over column 0 + Σ sin(h)·c over columns 1-2
    const h = [
      [0.5 * 2 + 1.5, -1.25 * 1 - 2, 2 * 0.5 + 0.25],
      [3 * -1 + 1.5, 0.75 * 4 - 2, -0.5 * 3 + 0.25],
    ];
    const dh = h.map((row, i) => row.map((v, j) => (j === 0 ? 2 * Math.sin(v) * Math.cos(v) : c.arraySync()[i]![j]! * Math.cos(v))));
    const db = [0, 1, 2].map((j) => dh[0]![j]! + dh[1]![j]!);
    for (const [j, v] of (patched.grads[1] as number[]).entries()) expect(v).toBeCloseTo(db[j]!, 5);
    tf.dispose([a, b, c]);
  });

  it('takes second derivatives (the tape survives the inner gradient)', async () => {
    await tf.setBackend('cpu');
    const x = tf.tensor1d([-1.5, 0.5, 2]);
    const d2 = tf.grad(tf.grad((t: tf.Tensor) => tf.sum(tf.pow(t, 3))));
    const value = d2(x);
    expect(Array.from(await value.data())).toEqual([-9, 3, 12]); // 6x
    tf.dispose([x, value]);
  });

  it('says when y does not depend on the xs (and frees the tape), and when dy is not float32', () => {
    const x = tf.scalar(2);
    const k = tf.scalar(3);
    const dy = tf.scalar(1, 'int32');
    const before = tf.memory().numTensors;
    expect(() => tf.tidy(() => tf.grad(() => tf.mul(tf.exp(k), k))(x))).toThrow(/Cannot compute gradient of y=f\(x\) with respect to x/);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => tf.grad((t: tf.Tensor) => tf.mul(t, k))(x, dy)).toThrow(/dy must have 'float32' dtype/);
    tf.dispose([x, k, dy]);
  });

  it('leaks nothing: numTensors flat over repeated variableGrads', () => {
    const init = tf.tensor2d([
      [0.5, -1],
      [2, 0.25],
    ]);
    const w = tf.variable(init);
    init.dispose();
    const data = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(tf.matMul(data, w))), [w]);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([w, data]);
  });
});
