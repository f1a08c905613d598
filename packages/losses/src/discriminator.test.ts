import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectClose, reference, take, torchConvWeight } from '../test/helpers';
import { LecamEma, discriminatorLoss, generatorAdversarialLoss } from './adversarial';
import { PatchDiscriminator } from './discriminator';

const d = reference.discriminator;

describe('PatchDiscriminator against PyTorch NLayerDiscriminator (train mode, fixed weights)', () => {
  let disc: PatchDiscriminator;
  let real: tf.Tensor4D;
  let fake: tf.Tensor4D;
  beforeAll(() => {
    disc = new PatchDiscriminator({ ...d.config, norm: 'batch', seed: 1 });
    const dict: Record<string, tf.Tensor> = {};
    for (const [name, value] of Object.entries(d.stateDict as Record<string, number[]>)) {
      dict[`main.${name}`] =
        name.endsWith('weight') && Array.isArray((value as unknown[])[0])
          ? torchConvWeight(value as unknown as number[][][][])
          : tf.tensor(value);
    }
    disc.loadStateDict(dict); // strict: the names match IBQ's checkpoint exactly
    tf.dispose(Object.values(dict));
    real = tf.tensor4d(d.real);
    fake = tf.tensor4d(d.fake);
  });
  afterAll(() => {
    disc.dispose();
    tf.dispose([real, fake]);
  });

  it('has the pix2pix layer names and shapes', () => {
    const names = disc.namedParameters().map(([n, v]) => `${n}:${v.shape}`);
    expect(names).toEqual([
      'main.0.weight:4,4,3,4',
      'main.0.bias:4',
      'main.2.weight:4,4,4,8',
      'main.3.weight:8',
      'main.3.bias:8',
      'main.5.weight:4,4,8,16',
      'main.6.weight:16',
      'main.6.bias:16',
      'main.8.weight:4,4,16,1',
      'main.8.bias:1',
    ]);
    expect(disc.outputSize(16)).toBe(2);
  });

  it('gives the same patch logits', async () => {
    expectClose(await take(disc.forward(real)), (d.logitsReal as number[][][][]).flat(3), 1e-5, 1e-4);
    expectClose(await take(disc.forward(fake)), (d.logitsFake as number[][][][]).flat(3), 1e-5, 1e-4);
  });

  it('gives the same hinge + 0.05·LeCAM loss and gradients to both image batches', async () => {
    const lecam = new LecamEma({ decay: d.lecam.decay });
    tf.tidy(() => {
      lecam.real.assign(tf.scalar(d.lecam.emaReal));
      lecam.fake.assign(tf.scalar(d.lecam.emaFake));
    });
    const r = discriminatorLoss(disc, real, fake, { lecam, lecamWeight: d.lecam.weight });
    expectClose(await take(r.components.hinge), [d.hinge], 1e-5, 1e-5);
    expectClose(await take(r.components.lecam), [d.lecamReg], 1e-5, 1e-4);
    expectClose(await take(r.total), [d.dLoss], 1e-5, 1e-5);
    const [gr, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => discriminatorLoss(disc, a as tf.Tensor4D, b as tf.Tensor4D, { lecam }).total)(
      [real, fake],
    );
    expectClose(await take(gr), (d.dLossGradReal as number[][][][]).flat(3), 1e-6, 1e-3);
    expectClose(await take(gf), (d.dLossGradFake as number[][][][]).flat(3), 1e-6, 1e-3);
    // the loss did not move the EMAs; update() commits IBQ's update with the batch means
    expect((await lecam.real.data())[0]).toBeCloseTo(d.lecam.emaReal, 6);
    lecam.update(r.components.logitsReal, r.components.logitsFake);
    expectClose(await lecam.real.data(), [d.lecam.emaRealAfter], 1e-6);
    expectClose(await lecam.fake.data(), [d.lecam.emaFakeAfter], 1e-6);
    expect(Object.keys(lecam.stateDict())).toEqual(['real', 'fake']); // checkpointed as buffers
    expect(lecam.namedParameters()).toEqual([]);
    tf.dispose([r.components.logitsReal, r.components.logitsFake]);
    lecam.dispose();
  });

  it('gives the same non-saturating generator loss (BCE of the per-image mean logit) and gradient', async () => {
    expectClose(await take(generatorAdversarialLoss(disc, fake)), [d.gLoss], 1e-6, 1e-5);
    const g = tf.grad((x: tf.Tensor) => generatorAdversarialLoss(disc, x as tf.Tensor4D))(fake);
    expectClose(await take(g), (d.gLossGradFake as number[][][][]).flat(3), 1e-7, 1e-3);
  });
});

describe('PatchDiscriminator', () => {
  it('defaults to the paper config (ndf 64, 3 layers, BatchNorm) and initialises N(0, 0.02)', async () => {
    const disc = new PatchDiscriminator({ seed: 3 });
    const shapes = disc.namedParameters().map(([n, v]) => `${n}:${v.shape}`);
    expect(shapes[0]).toBe('main.0.weight:4,4,3,64');
    expect(shapes).toContain('main.9.weight:512'); // ndf·8 after the stride-1 conv
    expect(shapes.at(-2)).toBe('main.11.weight:4,4,512,1');
    const w = (await disc.stateDict()['main.5.weight'].data()) as Float32Array; // 64·128·16 draws
    const mean = w.reduce((s, v) => s + v, 0) / w.length;
    const std = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
    expect(Math.abs(mean)).toBeLessThan(1e-3);
    expect(std).toBeCloseTo(0.02, 3);
    expect(disc.outputSize(256)).toBe(30); // pix2pix's 70×70 PatchGAN on 256² gives 30×30
    disc.dispose();
  });

  it('trains with GroupNorm and batch size 1, and is leak-free over repeated steps', async () => {
    const disc = new PatchDiscriminator({ baseChannels: 4, layers: 2, norm: 'group', groups: 2, seed: 5 });
    expect(disc.namedParameters().map(([n]) => n)).toContain('main.2.bias'); // conv bias kept without BatchNorm
    const x = tf.randomUniform([1, 16, 16, 3], -1, 1, 'float32', 7) as tf.Tensor4D;
    const y = tf.randomUniform([1, 16, 16, 3], -1, 1, 'float32', 8) as tf.Tensor4D;
    const lecam = new LecamEma();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const { value, grads } = tf.variableGrads(() => discriminatorLoss(disc, x, y, { lecam }).total, disc.trainableVariables());
      expect(Number.isFinite((await value.data())[0])).toBe(true);
      expect(Object.keys(grads).length).toBe(disc.trainableVariables().length);
      tf.dispose([value, ...Object.values(grads)]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y]);
    lecam.dispose();
    disc.dispose();
  });

  it('says how small an image may be, and checks channels and options', () => {
    const disc = new PatchDiscriminator({ baseChannels: 2, layers: 3, seed: 1 });
    tf.tidy(() => {
      expect(() => disc.forward(tf.zeros([1, 16, 16, 3]) as tf.Tensor4D)).toThrow(/too small for 3 layers \(need a side ≥ 24\)/);
      expect(() => disc.forward(tf.zeros([1, 32, 32, 1]) as tf.Tensor4D)).toThrow(/expected images \[B, H, W, 3\]/);
    });
    disc.dispose();
    expect(() => new PatchDiscriminator({ layers: 0 })).toThrow(/layers must be a positive integer/);
    expect(() => new PatchDiscriminator({ norm: 'instance' as 'batch' })).toThrow(/norm must be/);
  });
});
