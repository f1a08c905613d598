import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { tensorCountsOver } from './leaks';
import { StateDictError } from './module';
import { ADAMW_KERNEL, AdamW, clipByGlobalNorm, globalNorm, type NamedVariables } from './optim';
import { readSafetensors, safetensorsToTensors, writeSafetensors } from './safetensors';

/** Output of bench/reference/adamw.py (torch.optim.AdamW and clip_grad_norm_, float32). */
interface Fixture {
  shapes: Record<string, number[]>;
  groups: { name: string; params: string[]; lr: number; weightDecay: number; betas: [number, number]; eps: number }[];
  initial: Record<string, number[]>;
  steps: { lr: number[]; grads: Record<string, number[]>; params: Record<string, number[]> }[];
  state: Record<string, { exp_avg: number[]; exp_avg_sq: number[]; step: number }>;
  clip: { maxNorm: number; grads: Record<string, number[]>; norm: number; clipped: Record<string, number[]> }[];
}
const fixture: Fixture = JSON.parse(readFileSync(new URL('../test/fixtures/adamw.json', import.meta.url), 'utf8'));

/**
 * 1e-6 relative, plus an absolute floor of 1e-7 × the tensor's largest magnitude (about one float32
 * ulp of it): PyTorch's CPU `add_(g, alpha=1 − β1)` is a fused multiply-add and tfjs rounds the
 * product first, so where `β1·m + (1 − β1)·g` cancels to a tiny value the two differ in the last
 * bits of the terms (checked: exp_avg of a.weight[3] is -0.00062876540 with FMA and -0.00062876940
 * without, both exact float32 evaluations of the same formula).
 */
function expectClose(actual: ArrayLike<number>, expected: number[], label: string, rel = 1e-6): void {
  expect(actual.length, label).toBe(expected.length);
  const scale = Math.max(...expected.map(Math.abs));
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (err > rel * Math.abs(expected[i]) + 1e-7 * scale) {
      throw new Error(`${label}[${i}]: got ${actual[i]}, PyTorch ${expected[i]} (|diff| ${err})`);
    }
  }
}

/** A variable that owns `init` (tf.variable alone leaves the initial tensor's handle allocated). */
function variable(init: tf.Tensor): tf.Variable {
  const v = tf.variable(init);
  init.dispose();
  return v;
}

function makeParams(values: Record<string, number[]>, shapes: Record<string, number[]>): Record<string, tf.Variable> {
  return Object.fromEntries(Object.entries(values).map(([n, v]) => [n, variable(tf.tensor(v, shapes[n]))]));
}

function fixtureOptimizer(vars: Record<string, tf.Variable>): AdamW {
  return new AdamW(
    fixture.groups.map((g) => ({
      name: g.name,
      params: g.params.map((n) => [n, vars[n]] as [string, tf.Variable]),
      lr: g.lr,
      weightDecay: g.weightDecay,
      betas: g.betas,
      eps: g.eps,
    })),
  );
}

function gradsOf(step: Fixture['steps'][number]): Record<string, tf.Tensor> {
  return Object.fromEntries(Object.entries(step.grads).map(([n, g]) => [n, tf.tensor(g, fixture.shapes[n])]));
}

describe('AdamW against torch.optim.AdamW', () => {
  it('matches every step: two groups, betas (0.5, 0.9), a skipped gradient and an lr change', async () => {
    const vars = makeParams(fixture.initial, fixture.shapes);
    const opt = fixtureOptimizer(vars);
    for (const [k, step] of fixture.steps.entries()) {
      for (const [gi, lr] of step.lr.entries()) opt.setLearningRate(lr, fixture.groups[gi].name);
      const grads = gradsOf(step);
      opt.step(grads);
      tf.dispose(grads);
      for (const [n, v] of Object.entries(vars)) expectClose(await v.data(), step.params[n], `step ${k + 1} ${n}`);
    }
    // Per-parameter step counts: "a.bias" had no gradient in step 3.
    expect(opt.stepCount('a.bias')).toBe(fixture.state['a.bias'].step);
    expect(opt.stepCount('a.weight')).toBe(fixture.state['a.weight'].step);
    const state = opt.stateDict();
    for (const [n, s] of Object.entries(fixture.state)) {
      expectClose(await state[`exp_avg.${n}`].data(), s.exp_avg, `exp_avg ${n}`);
      expectClose(await state[`exp_avg_sq.${n}`].data(), s.exp_avg_sq, `exp_avg_sq ${n}`);
      expect((await state[`step.${n}`].data())[0]).toBe(s.step);
      expect(state[`step.${n}`].dtype).toBe('int32');
    }
    tf.dispose(state);
    opt.dispose();
    tf.dispose(Object.values(vars));
  });

  it('gives identical results with gradients keyed by variable (Map)', async () => {
    const a = makeParams(fixture.initial, fixture.shapes);
    const b = makeParams(fixture.initial, fixture.shapes);
    const optA = fixtureOptimizer(a);
    const optB = fixtureOptimizer(b);
    for (const step of fixture.steps.slice(0, 2)) {
      const grads = gradsOf(step);
      optA.step(grads);
      optB.step(new Map(Object.entries(grads).map(([n, g]) => [b[n], g])));
      tf.dispose(grads);
    }
    for (const n of Object.keys(a)) expect(Array.from(await b[n].data())).toEqual(Array.from(await a[n].data()));
    optA.dispose();
    optB.dispose();
    tf.dispose([...Object.values(a), ...Object.values(b)]);
  });
});

describe('AdamW joint updates', () => {
  it('updates a group in one batch bit-identically to one optimizer per parameter, also when step counts differ', async () => {
    const shapes: Record<string, number[]> = { w: [3, 4], b: [4], s: [], e: [2, 1, 3] };
    const init = Object.fromEntries(Object.entries(shapes).map(([n, sh], i) => [n, tf.randomNormal(sh, 0, 1, 'float32', 10 + i)]));
    const joint = Object.fromEntries(Object.entries(init).map(([n, t]) => [n, tf.variable(t)]));
    const alone = Object.fromEntries(Object.entries(init).map(([n, t]) => [n, tf.variable(t)]));
    tf.dispose(Object.values(init));
    const options = { lr: 0.05, weightDecay: 0.1, betas: [0.8, 0.95] as [number, number], eps: 1e-6 };
    const opt = new AdamW(Object.entries(joint), options);
    const singles = Object.fromEntries(Object.entries(alone).map(([n, v]) => [n, new AdamW([[n, v]], options)]));
    for (let step = 0; step < 4; step++) {
      // 'e' misses steps 1 and 2, so it falls behind the others' step count (its own bucket).
      const names = Object.keys(shapes).filter((n) => n !== 'e' || step === 0 || step === 3);
      const grads = Object.fromEntries(names.map((n, i) => [n, tf.randomNormal(shapes[n]!, 0, 1, 'float32', 100 * step + i)]));
      opt.step(grads);
      for (const n of names) singles[n]!.step({ [n]: grads[n]! });
      tf.dispose(Object.values(grads));
    }
    for (const n of Object.keys(shapes)) {
      expect(Array.from(await joint[n]!.data()), n).toEqual(Array.from(await alone[n]!.data()));
      expect(joint[n]!.shape).toEqual(shapes[n]);
    }
    const state = opt.stateDict();
    expect(Array.from(await state['step.e']!.data())).toEqual([2]);
    expect(Array.from(await state['step.w']!.data())).toEqual([4]);
    const single = singles['e']!.stateDict();
    expect(Array.from(await state['exp_avg_sq.e']!.data())).toEqual(Array.from(await single['exp_avg_sq.e']!.data()));
    tf.dispose([...Object.values(state), ...Object.values(single)]);
    opt.dispose();
    for (const o of Object.values(singles)) o.dispose();
    tf.dispose([...Object.values(joint), ...Object.values(alone)]);
  });
});

describe('AdamW fused kernel', () => {
  it("@ettjs/backend's fused kernel (cpu) and the tfjs-op update give bit-identical parameters and moments", async () => {
    const kernel = tf.getKernel(ADAMW_KERNEL, tf.getBackend());
    expect(kernel, 'the test setup imports @ettjs/backend, which registers the kernel for cpu').toBeDefined();
    const shapes: Record<string, number[]> = { w: [5, 7], b: [7], s: [] };
    const run = async (fused: boolean) => {
      if (!fused) tf.unregisterKernel(ADAMW_KERNEL, tf.getBackend());
      try {
        const vars: NamedVariables = Object.entries(shapes).map(([n, sh], i) => {
          const init = tf.randomNormal(sh, 0, 1, 'float32', 5 + i);
          const v = tf.variable(init);
          init.dispose();
          return [n, v];
        });
        const opt = new AdamW(vars, { lr: 0.02, weightDecay: 0.1 });
        for (let step = 0; step < 3; step++) {
          // Seeds from 1: tfjs draws seed 0 unseeded.
          const grads = Object.fromEntries(vars.map(([n, v], i) => [n, tf.randomNormal(v.shape, 0, 1, 'float32', 50 * step + i + 1)]));
          opt.step(grads);
          tf.dispose(Object.values(grads));
        }
        const state = opt.stateDict();
        const out = { ...Object.fromEntries(await Promise.all(vars.map(async ([n, v]) => [n, Array.from(await v.data())]))) };
        for (const [k, t] of Object.entries(state)) out[k] = Array.from(await t.data());
        tf.dispose([...Object.values(state), ...vars.map(([, v]) => v)]);
        opt.dispose();
        return out;
      } finally {
        if (!fused) tf.registerKernel(kernel!);
      }
    };
    const fused = await run(true);
    const ops = await run(false);
    expect(Object.keys(fused)).toHaveLength(3 + 3 * 3);
    expect(fused).toEqual(ops);
    expect(fused['w']).not.toEqual(ops['exp_avg.w']);
  });
});

describe('AdamW state', () => {
  it('resumes exactly from a stateDict saved through safetensors', async () => {
    const a = makeParams(fixture.initial, fixture.shapes);
    const optA = fixtureOptimizer(a);
    for (const step of fixture.steps.slice(0, 3)) {
      const g = gradsOf(step);
      optA.step(g);
      tf.dispose(g);
    }
    const saved = optA.stateDict();
    const bytes = writeSafetensors(saved);
    tf.dispose(saved);
    // A fresh optimizer over copies of the parameters, as after a restart.
    const b = makeParams(
      Object.fromEntries(await Promise.all(Object.entries(a).map(async ([n, v]) => [n, Array.from(await v.data())]))),
      fixture.shapes,
    );
    const optB = fixtureOptimizer(b);
    const loaded = safetensorsToTensors(readSafetensors(bytes));
    optB.loadStateDict(loaded);
    tf.dispose(loaded);
    expect(optB.stepCount('a.bias')).toBe(2);
    for (const step of fixture.steps.slice(3)) {
      const g = gradsOf(step);
      optA.step(g);
      optB.step(g);
      tf.dispose(g);
    }
    for (const n of Object.keys(a)) expect(Array.from(await b[n].data())).toEqual(Array.from(await a[n].data()));
    optA.dispose();
    optB.dispose();
    tf.dispose([...Object.values(a), ...Object.values(b)]);
  });

  it('loadStateDict lists every problem and changes nothing', async () => {
    const w = variable(tf.ones([2, 2]));
    const c = variable(tf.ones([3]));
    const opt = new AdamW([
      ['w', w],
      ['c', c],
    ]);
    const g = { w: tf.fill([2, 2], 0.5), c: tf.fill([3], -1) };
    opt.step(g);
    const before = opt.stateDict();
    const bad = {
      'exp_avg.w': tf.zeros([2, 3]),
      'exp_avg_sq.w': tf.zeros([2, 2]),
      'step.w': tf.scalar(1, 'int32'),
      'exp_avg.c': tf.zeros([3]),
      'exp_avg.nope': tf.zeros([1]),
      momentum: tf.zeros([1]),
    };
    let err: unknown;
    try {
      opt.loadStateDict(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const problems = (err as StateDictError).mismatches.map((m) => `${m.problem}:${m.name}`).sort();
    expect(problems).toEqual([
      'missing:exp_avg_sq.c',
      'missing:step.c',
      'shape:exp_avg.w',
      'unexpected:exp_avg.nope',
      'unexpected:momentum',
    ]);
    expect((err as Error).message).toMatch(/AdamW.loadStateDict: 5 mismatch/);
    const zeroStep = { 'exp_avg.c': tf.zeros([3]), 'exp_avg_sq.c': tf.zeros([3]), 'step.c': tf.scalar(0, 'int32') };
    expect(() => opt.loadStateDict(zeroStep)).toThrow(/step.c.*an integer >= 1, got 0/);
    const after = opt.stateDict();
    for (const k of Object.keys(before)) expect(Array.from(await after[k].data())).toEqual(Array.from(await before[k].data()));
    expect(opt.stepCount('w')).toBe(1);
    tf.dispose([before, after, bad, zeroStep, g]);
    opt.dispose();
    tf.dispose([w, c]);
  });

  it('an empty state dict resets to "never stepped"', async () => {
    const w = variable(tf.zeros([2]));
    const opt = new AdamW([['w', w]], { lr: 0.1, weightDecay: 0 });
    const g = { w: tf.tensor1d([1, -4]) };
    opt.step(g);
    opt.step(g);
    opt.loadStateDict({});
    expect(opt.stepCount('w')).toBe(0);
    expect(opt.stateDict()).toEqual({});
    tf.tidy(() => w.assign(tf.zeros([2])));
    opt.step(g);
    // First Adam step moves each coordinate by lr·sign(g) (bias-corrected m/sqrt(v) = ±1, up to eps).
    expectClose(await w.data(), [-0.1, 0.1], 'first step', 1e-6);
    tf.dispose(g);
    opt.dispose();
    w.dispose();
  });
});

describe('AdamW API', () => {
  it('first step of plain Adam and decoupled decay, computed by hand', async () => {
    // lr 0.1, wd 0.5, g = 2: p = 3·(1 − 0.05) − 0.1·(2/(2 + 1e-8)) = 2.85 − 0.1 (to float32).
    const p = variable(tf.scalar(3));
    const opt = new AdamW([['p', p]], { lr: 0.1, weightDecay: 0.5 });
    const g = { p: tf.scalar(2) };
    opt.step(g);
    expectClose(await p.data(), [2.75], 'decoupled', 1e-6);
    tf.dispose(g);
    opt.dispose();
    p.dispose();
  });

  it('sets learning rates for all groups, one group, or by a factor of each initial rate', () => {
    const x = variable(tf.zeros([1]));
    const y = variable(tf.zeros([1]));
    const opt = new AdamW(
      [
        { name: 'tok', params: [['x', x]], lr: 1e-4 },
        { name: 'lm', params: [['y', y]] },
      ],
      { lr: 1e-3 },
    );
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([1e-4, 1e-3]);
    expect(opt.paramGroups[1].weightDecay).toBe(1e-2);
    expect(opt.paramNames).toEqual(['x', 'y']);
    opt.scaleLearningRate(0.5);
    expect([opt.getLearningRate('tok'), opt.getLearningRate(1)]).toEqual([5e-5, 5e-4]);
    opt.setLearningRate(2e-3, 'lm');
    expect([opt.getLearningRate(0), opt.getLearningRate('lm')]).toEqual([5e-5, 2e-3]);
    opt.setLearningRate(0);
    expect(opt.paramGroups.map((g) => g.lr)).toEqual([0, 0]);
    expect(() => opt.setLearningRate(1, 'nope')).toThrow(/no parameter group "nope" \(groups: tok, lm\)/);
    expect(() => opt.setLearningRate(Number.NaN)).toThrow(/finite/);
    opt.dispose();
    tf.dispose([x, y]);
  });

  it('rejects bad construction', () => {
    const x = variable(tf.zeros([1]));
    const i = variable(tf.zeros([1], 'int32'));
    expect(() => new AdamW([['x', x]], { betas: [0.9, 1] })).toThrow(/betas must be two numbers in \[0, 1\)/);
    expect(() => new AdamW([['x', x]], { lr: -1 })).toThrow(/lr must be/);
    expect(() => new AdamW([{ params: [['x', x]], weightDecay: -0.1 }])).toThrow(/group "0": weightDecay/);
    expect(
      () =>
        new AdamW([
          ['x', x],
          ['x', x],
        ]),
    ).toThrow(/"x" appears twice/);
    expect(
      () =>
        new AdamW([
          ['x', x],
          ['y', x],
        ]),
    ).toThrow(/"y" is the same variable as "x"/);
    const plain = tf.zeros([1]);
    expect(() => new AdamW([['x', plain as tf.Variable]])).toThrow(/not a \[name, tf.Variable\] pair/);
    expect(() => new AdamW([['i', i]])).toThrow(/"i" is int32/);
    tf.dispose([x, i, plain]);
  });

  it('checks every gradient before updating any parameter', async () => {
    const x = variable(tf.ones([2]));
    const y = variable(tf.ones([3]));
    const opt = new AdamW([
      ['x', x],
      ['y', y],
    ]);
    const ok = tf.ones([2]);
    const wrong = tf.ones([2]);
    const ints = tf.ones([3], 'int32');
    expect(() => opt.step({ x: ok, y: wrong })).toThrow(/gradient for "y" has shape \[2\], the parameter has \[3\]/);
    expect(() => opt.step({ x: ok, z: ok })).toThrow(/gradient for "z", which this optimizer does not hold/);
    expect(() => opt.step({ x: ok, y: ints })).toThrow(/"y" is int32, expected float32/);
    expect(Array.from(await x.data())).toEqual([1, 1]);
    expect(opt.stepCount('x')).toBe(0);
    // null is "no gradient", as tf.variableGrads reports a non-trainable variable.
    opt.step({ x: ok, y: null });
    expect([opt.stepCount('x'), opt.stepCount('y')]).toEqual([1, 0]);
    expect(Array.from(await y.data())).toEqual([1, 1, 1]);
    tf.dispose([ok, wrong, ints]);
    opt.dispose();
    expect(() => opt.step({})).toThrow(/after dispose/);
    tf.dispose([x, y]);
  });

  it('is leak-free: the tensor count stays flat over 50 steps, and dispose frees the moments', async () => {
    const vars: NamedVariables = [
      ['w', variable(tf.ones([4, 3]))],
      ['b', variable(tf.zeros([3]))],
    ];
    const start = tf.memory().numTensors;
    const opt = new AdamW([{ params: vars, betas: [0.5, 0.9] }]);
    const x = tf.ones([2, 4]);
    const counts = await tensorCountsOver(50, () => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.square(tf.add(tf.matMul(x, vars[0][1]), vars[1][1]))),
        vars.map(([, v]) => v),
      );
      const byName = { w: grads[vars[0][1].name], b: grads[vars[1][1].name] };
      const clipped = clipByGlobalNorm(byName, 1);
      opt.step(clipped.grads);
      tf.dispose([value, grads, clipped.grads, clipped.norm]);
    });
    expect(new Set(counts).size).toBe(1);
    expect(counts[0]).toBe(start + 1 + 4); // x plus m and v for two parameters
    opt.dispose();
    opt.dispose();
    expect(tf.memory().numTensors).toBe(start + 1);
    x.dispose();
    tf.dispose(vars.map(([, v]) => v));
  });
});

describe('clipByGlobalNorm and globalNorm', () => {
  it('match torch.nn.utils.clip_grad_norm_ (clipped and unclipped cases)', async () => {
    for (const c of fixture.clip) {
      const grads = Object.fromEntries(Object.entries(c.grads).map(([n, g]) => [n, tf.tensor(g, fixture.shapes[n])]));
      const { grads: clipped, norm } = clipByGlobalNorm(grads, c.maxNorm);
      expectClose(await norm.data(), [c.norm], `norm (maxNorm ${c.maxNorm})`);
      for (const n of Object.keys(grads)) {
        expect(clipped[n].shape).toEqual(fixture.shapes[n]);
        expectClose(await clipped[n].data(), c.clipped[n], `clipped ${n} (maxNorm ${c.maxNorm})`);
      }
      tf.dispose([grads, clipped, norm]);
    }
  });

  it('computes the global norm by hand (3, 4, 12 → 13), keeps Map keys, checks maxNorm', async () => {
    const a = tf.tensor1d([3, 4]);
    const b = tf.tensor2d([[12]]);
    const n = globalNorm({ a, b });
    expect((await n.data())[0]).toBeCloseTo(13, 5);
    const v = variable(tf.zeros([1]));
    const { grads, norm } = clipByGlobalNorm(new Map([[v, b]]), 6);
    expect((await (grads.get(v) as tf.Tensor).data())[0]).toBeCloseTo((12 * 6) / (12 + 1e-6), 4);
    expect(() => clipByGlobalNorm({ a }, 0)).toThrow(/maxNorm must be > 0/);
    const empty = clipByGlobalNorm({}, 1);
    expect((await empty.norm.data())[0]).toBe(0);
    tf.dispose([a, b, n, v, norm, empty.norm, [...grads.values()]]);
  });
});
