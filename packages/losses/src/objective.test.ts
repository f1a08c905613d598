import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClose, take } from '../test/helpers';
import { generatorAdversarialLoss } from './adversarial';
import { captionLoss } from './caption';
import { PatchDiscriminator } from './discriminator';
import { entropyLoss } from './entropy';
import { LossComponentError, LossConfigError } from './errors';
import { assertFinite } from './finite';
import { disposeObjective, ettObjective, resolveVqObjectiveConfig, vqObjective } from './objective';
import { l1Loss } from './reconstruction';
import { alphaAt } from './schedule';
import { StructuralLoss } from './structural';

describe('vqObjective and ettObjective', () => {
  let disc: PatchDiscriminator;
  let x: tf.Tensor4D;
  let r: tf.Tensor4D;
  let z: tf.Tensor2D;
  let logits: tf.Tensor3D;
  let labels: tf.Tensor2D;
  beforeAll(() => {
    disc = new PatchDiscriminator({ baseChannels: 2, layers: 1, seed: 11 });
    x = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
    r = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 2) as tf.Tensor4D;
    z = tf.randomNormal([6, 5], 0, 0.05, 'float32', 3) as tf.Tensor2D;
    logits = tf.randomNormal([2, 4, 9], 0, 1, 'float32', 4) as tf.Tensor3D;
    labels = tf.tensor2d(
      [
        [-100, 3, 1, 8],
        [-100, -100, 0, 2],
      ],
      undefined,
      'int32',
    );
  });
  afterAll(() => {
    disc.dispose();
    tf.dispose([x, r, z, logits, labels]);
  });

  const config = { perceptual: { kind: 'structural' as const, scales: 2 } };
  const quantizer = (zz: tf.Tensor) => ({ quant: tf.mean(tf.square(zz)) as tf.Scalar, entropy: entropyLoss(zz).loss });
  const vq = (rr: tf.Tensor, zz: tf.Tensor) =>
    vqObjective({ inputs: x, reconstructions: rr as tf.Tensor4D, quantizerLosses: quantizer(zz), discriminator: disc }, config);

  it('logs every term, with the paper weights, and total = Σ w·c', async () => {
    const res = tf.tidy(() => vq(r, z));
    expect(res.perceptual).toBe('structural');
    expect(res.weights).toEqual({ reconstruction: 1, perceptual: 1, gan: 0.1, quant: 1, entropy: 0.05 });
    const c = Object.fromEntries(await Promise.all(Object.entries(res.components).map(async ([k, t]) => [k, (await t.data())[0]])));
    expect(Object.keys(c).sort()).toEqual(['entropy', 'gan', 'perceptual', 'quant', 'reconstruction']);
    const manual = c.reconstruction + c.perceptual + 0.1 * c.gan + c.quant + 0.05 * c.entropy;
    expectClose(await res.total.data(), [manual], 1e-5);
    // each component equals its own function
    expectClose([c.reconstruction], await take(l1Loss(x, r)), 1e-7);
    expectClose([c.perceptual], await take(new StructuralLoss({ scales: 2 }).compute(x, r)), 1e-6);
    expectClose([c.gan], await take(generatorAdversarialLoss(disc, r)), 1e-6);
    disposeObjective(res);
  });

  it('has the gradient of the weighted sum of the parts (tf.grads on both)', async () => {
    const [gr, gz] = tf.grads((rr: tf.Tensor, zz: tf.Tensor) => vq(rr, zz).total)([r, z]);
    const parts = (rr: tf.Tensor, zz: tf.Tensor) =>
      tf.addN([
        l1Loss(x, rr),
        new StructuralLoss({ scales: 2 }).compute(x, rr as tf.Tensor4D),
        tf.mul(generatorAdversarialLoss(disc, rr as tf.Tensor4D), 0.1),
        tf.mean(tf.square(zz)),
        tf.mul(entropyLoss(zz).loss, 0.05),
      ]) as tf.Scalar;
    const [pr, pz] = tf.grads(parts)([r, z]);
    expectClose(await take(gr), await take(pr), 1e-8, 1e-5);
    expectClose(await take(gz), await take(pz), 1e-8, 1e-5);
  });

  it('ettObjective: L_cap + α·L_vq with vq.* logged, and its gradient is the weighted sum', async () => {
    const ett = (l: tf.Tensor, rr: tf.Tensor, zz: tf.Tensor, step = 0) =>
      ettObjective({ caption: captionLoss(l as tf.Tensor3D, labels).loss, vq: vq(rr, zz) }, {}, { step });
    const res = tf.tidy(() => ett(logits, r, z));
    expect(res.weights).toEqual({ caption: 1, vq: 0.25 });
    expect(Object.keys(res.components)).toEqual([
      'caption',
      'vq',
      'vq.reconstruction',
      'vq.perceptual',
      'vq.gan',
      'vq.quant',
      'vq.entropy',
    ]);
    const [cap, v] = [(await res.components.caption.data())[0], (await res.components.vq.data())[0]];
    expectClose(await res.total.data(), [cap + 0.25 * v], 1e-5);
    disposeObjective(res);

    const [gl, gr, gz] = tf.grads((l: tf.Tensor, rr: tf.Tensor, zz: tf.Tensor) => ett(l, rr, zz).total)([logits, r, z]);
    const [cl] = tf.grads((l: tf.Tensor) => captionLoss(l as tf.Tensor3D, labels).loss)([logits]);
    const [vr, vz] = tf.grads((rr: tf.Tensor, zz: tf.Tensor) => vq(rr, zz).total)([r, z]);
    expectClose(await take(gl), await take(cl), 1e-8, 1e-5);
    expectClose(await take(gr), await take(tf.mul(vr, 0.25)), 1e-8, 1e-5);
    expectClose(await take(gz), await take(tf.mul(vz, 0.25)), 1e-8, 1e-5);
    tf.dispose([vr, vz]);
  });

  it('switches the GAN term on at its start step, ramps it, and accepts an adaptive override', () => {
    const at = (step: number, extra: object = {}) => {
      const res = vqObjective(
        { inputs: x, reconstructions: r, quantizerLosses: {}, discriminator: disc },
        { ...config, gan: { start: 10, rampSteps: 4 } },
        { step, ...extra },
      );
      disposeObjective(res);
      return res.weights.gan;
    };
    expect(at(9)).toBeUndefined(); // not computed at all before the start
    expect(at(10)).toBeCloseTo(0.025, 8);
    expect(at(11)).toBeCloseTo(0.05, 8);
    expect(at(100)).toBeCloseTo(0.1, 8);
    expect(at(100, { ganWeight: 2.5 })).toBeCloseTo(2.5, 8);
  });

  it('uses the quantizer proposed weights unless the config names the term', () => {
    const q = tf.tidy(() => ({ codebook: tf.scalar(1), commitment: tf.scalar(2) }));
    const run = (cfg: object) => {
      const res = vqObjective(
        { inputs: x, reconstructions: r, quantizerLosses: q, quantizerLossWeights: { codebook: 1, commitment: 0.25 } },
        {
          perceptual: { kind: 'none' },
          weights: { gan: 0 },
          ...cfg,
        },
      );
      disposeObjective(res);
      return res.weights;
    };
    expect(run({})).toEqual({ reconstruction: 1, codebook: 1, commitment: 0.25 });
    expect(run({ quantizerWeights: { commitment: 0 } })).toEqual({ reconstruction: 1, codebook: 1, commitment: 0 });
    tf.dispose(Object.values(q));
  });

  it('rejects unknown and negative weights and missing pieces, naming them', () => {
    tf.tidy(() => {
      const base = { inputs: x, reconstructions: r, quantizerLosses: {}, discriminator: disc };
      expect(() => vqObjective(base, { weights: { percept: 1 } as object })).toThrow(
        /unknown weight "percept"; valid keys: reconstruction, perceptual, gan/,
      );
      expect(() => vqObjective(base, { weights: { gan: -0.1 } })).toThrow(/weight "gan" must be a finite number ≥ 0, got -0.1/);
      expect(() => vqObjective(base, { quantizerWeights: { entropy: Number.NaN } })).toThrow(LossConfigError);
      expect(() => vqObjective({ ...base, quantizerLosses: { commit: tf.scalar(1) } }, config)).toThrow(
        /quantizer returned a term "commit" that has no weight; known quantizer terms: quant, entropy/,
      );
      expect(() => vqObjective({ ...base, discriminator: undefined }, config)).toThrow(/GAN term is active at step 0 .* no discriminator/);
      expect(() => vqObjective(base, { perceptual: { kind: 'lpips' } })).toThrow(/'lpips' needs an LpipsLoss/);
      expect(() => vqObjective({ ...base, perceptual: new StructuralLoss() }, { perceptual: { kind: 'lpips' } })).toThrow(
        /says perceptual 'lpips' but a 'structural'/,
      );
      expect(() => resolveVqObjectiveConfig({ recon: 'l1' } as object)).toThrow(/unknown config key "recon"/);
      expect(() => ettObjective({ caption: tf.scalar(1), vq: tf.scalar(1) }, { alpha: { kind: 'constant', value: -1 } })).toThrow(
        /alpha: value/,
      );
      expect(() => ettObjective({ caption: tf.scalar(1), vq: tf.scalar(1) }, { alfa: 1 } as object)).toThrow(
        /unknown config key "alfa"; valid keys: alpha/,
      );
    });
  });
});

describe('alpha schedules', () => {
  it('constant and linear warmup', () => {
    expect(alphaAt({ kind: 'constant', value: 0.25 }, 1000)).toBe(0.25);
    expect(alphaAt({ kind: 'warmup', value: 0.5, steps: 100 }, 0)).toBe(0);
    expect(alphaAt({ kind: 'warmup', value: 0.5, steps: 100 }, 50)).toBe(0.25);
    expect(alphaAt({ kind: 'warmup', value: 0.5, steps: 100 }, 500)).toBe(0.5);
    expect(() => alphaAt({ kind: 'cosine' } as never, 0)).toThrow();
    expect(() => alphaAt({ kind: 'cosine', value: 1 } as never, 0)).toThrow(/unknown schedule kind 'cosine'; valid kinds/);
    expect(() => alphaAt({ kind: 'warmup', value: 1, steps: 0 }, 0)).toThrow(/warmup steps/);
  });
});

describe('assertFinite', () => {
  it('returns the values, or throws LossComponentError naming the component and step', async () => {
    const ok = tf.tidy(() => ({ caption: tf.scalar(1.5), vq: tf.scalar(0.25) }));
    expect(await assertFinite(ok, 3)).toEqual({ caption: 1.5, vq: 0.25 });
    const bad = tf.tidy(() => ({ caption: tf.scalar(1.5), gan: tf.scalar(Number.NaN) }));
    const err = await assertFinite(bad, 12).catch((e) => e);
    expect(err).toBeInstanceOf(LossComponentError);
    expect(err.component).toBe('gan');
    expect(err.message).toMatch(/component "gan" is NaN at step 12/);
    const inf = tf.tidy(() => ({ l1: tf.scalar(Number.POSITIVE_INFINITY) }));
    await expect(assertFinite(inf)).rejects.toThrow(/component "l1" is \+Infinity\./);
    tf.dispose([...Object.values(ok), ...Object.values(bad), ...Object.values(inf)]);
  });
});
