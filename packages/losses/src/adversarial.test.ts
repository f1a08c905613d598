import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { expectClose, finiteDifferences, take } from '../test/helpers';
import { adaptiveGanWeight, ganFactor, hingeDiscriminatorLoss, lecamRegularization, nonSaturatingGeneratorLoss } from './adversarial';
import { Conv2d } from './conv';
import { GroupNorm } from './norm';

describe('adversarial terms', () => {
  it('hinge and LeCAM equal hand computations', async () => {
    const real = tf.tensor1d([2, 0.5, -1]); // relu(1 − ·) = 0, 0.5, 2 → mean 2.5/3
    const fake = tf.tensor1d([-2, 0, 0.5]); // relu(1 + ·) = 0, 1, 1.5 → mean 2.5/3
    expectClose(await take(hingeDiscriminatorLoss(real, fake)), [2.5 / 3], 1e-6);
    const [er, ef] = [tf.scalar(0.2), tf.scalar(0.1)];
    // relu(real − 0.1)² = 1.9², 0.4², 0 ; relu(0.2 − fake)² = 2.2², 0.2², 0
    const want = (1.9 ** 2 + 0.4 ** 2) / 3 + (2.2 ** 2 + 0.2 ** 2) / 3;
    expectClose(await take(lecamRegularization(real, fake, er, ef)), [want], 1e-5);
    tf.dispose([real, fake, er, ef]);
  });

  it('hinge + 0.05·LeCAM has the gradient of finite differences', async () => {
    const fake = tf.tensor1d([-1.7, 0.2, 0.55, -0.3]);
    const [er, ef] = [tf.scalar(0.3), tf.scalar(-0.1)];
    const f = (real: tf.Tensor) =>
      tf.tidy(() => tf.add(hingeDiscriminatorLoss(real, fake), tf.mul(lecamRegularization(real, fake, er, ef), 0.05)) as tf.Scalar);
    const real = tf.tensor1d([1.6, 0.45, -0.8, 0.05]);
    const { analytic, numeric } = await finiteDifferences(f, real, [0, 1, 2, 3], 1e-2);
    expectClose(analytic, numeric, 1e-3);
    // the EMA anchors are constants: no gradient flows into them
    const gEma = await take(tf.grad((e: tf.Tensor) => lecamRegularization(real, fake, er, e as tf.Scalar))(ef));
    expect(gEma).toEqual([0]);
    tf.dispose([fake, er, ef, real]);
  });

  it('the generator loss is softplus(−mean logit) per image and stable for large logits', async () => {
    // image 0 mean logit 1, image 1 mean logit −3
    const l = tf.tensor4d([0, 2, 1, 1, -3, -3, -2, -4], [2, 2, 2, 1]);
    const want = (Math.log1p(Math.exp(-1)) + Math.log1p(Math.exp(3))) / 2;
    expectClose(await take(nonSaturatingGeneratorLoss(l)), [want], 1e-6);
    const big = tf.tensor4d([-200, 200], [2, 1, 1, 1]);
    expectClose(await take(nonSaturatingGeneratorLoss(big)), [100], 1e-3);
    tf.dispose([l, big]);
  });

  it('ganFactor: 0 before start, linear ramp, then 1', () => {
    expect(ganFactor(5)).toBe(1);
    expect(ganFactor(4, { start: 5 })).toBe(0);
    expect(ganFactor(5, { start: 5 })).toBe(1);
    expect(ganFactor(5, { start: 5, rampSteps: 4 })).toBe(0.25);
    expect(ganFactor(8, { start: 5, rampSteps: 4 })).toBe(1);
    expect(() => ganFactor(0, { start: -1 })).toThrow(/≥ 0/);
  });

  it('adaptiveGanWeight is ‖∇rec‖/(‖∇G‖ + 1e-4), clamped to [0, 1e4], times discWeight', async () => {
    const rec = tf.tensor1d([3, 4]); // norm 5
    const gan = tf.tensor1d([0, 2]); // norm 2
    const r = await adaptiveGanWeight(rec, gan, { discWeight: 0.4 });
    expect(r.recNorm).toBeCloseTo(5, 6);
    expect(r.ganNorm).toBeCloseTo(2, 6);
    expect(r.weight).toBeCloseTo((5 / (2 + 1e-4)) * 0.4, 6);
    const zero = tf.zeros([2]);
    expect((await adaptiveGanWeight(rec, zero)).weight).toBe(1e4); // 5/1e-4 = 5e4, clamped
    tf.dispose([rec, gan, zero]);
  });
});

describe('Conv2d and GroupNorm', () => {
  it('Conv2d pads like PyTorch padding=1 for k=4, s=2 (symmetric, not tfjs "same")', async () => {
    const conv = new Conv2d(1, 1, { kernel: 4, stride: 2, padding: 1 });
    tf.tidy(() => conv.weight.assign(tf.ones([4, 4, 1, 1])));
    // 4×4 input of ones → padded 6×6 → windows at rows/cols {0, 2}: counts of real pixels 3·3, 3·3, 3·3, 3·3
    const x = tf.ones([1, 4, 4, 1]) as tf.Tensor4D;
    const y = conv.forward(x);
    expect(y.shape).toEqual([1, 2, 2, 1]);
    expect(await take(y)).toEqual([9, 9, 9, 9]);
    x.dispose();
    conv.dispose();
  });

  it('GroupNorm normalises each sample over its group', async () => {
    const gn = new GroupNorm(2, 1);
    const x = tf.tensor4d([1, 3, 5, 7], [1, 1, 2, 2]); // one group: mean 4, var 5
    const want = [1, 3, 5, 7].map((v) => (v - 4) / Math.sqrt(5 + 1e-5));
    expectClose(await take(gn.forward(x)), want, 1e-5);
    expect(() => new GroupNorm(3, 2)).toThrow(/divisible/);
    x.dispose();
    gn.dispose();
  });
});
