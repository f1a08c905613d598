import { describe, expect, it } from 'vitest';
import { Toy } from '../test/toy';
import { applyFreezing, discriminatorGroups, selectStageParams } from './parameter-selection';
import type { Stage } from './stage';
import type { ToyBatch } from '../test/toy';

const stage = (s: Partial<Stage<ToyBatch>>): Stage<ToyBatch> => ({
  name: 's',
  steps: 1,
  trainable: ['net'],
  loss: () => {
    throw new Error('unused');
  },
  optimizer: { kind: 'adamw', lr: 0.1 },
  ...s,
});

describe('selectStageParams', () => {
  it('puts rank ≤ 1 parameters (biases, gains) in no-decay groups and honours group lr / weightDecay', () => {
    const model = new Toy(1);
    const sel = selectStageParams(model, stage({ groups: [{ name: 'head', modules: ['net.l2'], lr: 0.01, weightDecay: 0.5 }] }), 'stage');
    const summary = sel.groups.map((g) => ({ name: g.name, lr: g.lr, weightDecay: g.weightDecay, params: g.params.map(([n]) => n) }));
    expect(summary).toEqual([
      { name: 'default.no_decay', lr: undefined, weightDecay: 0, params: ['net.gain', 'net.l1.bias'] },
      { name: 'default', lr: undefined, weightDecay: undefined, params: ['net.l1.weight'] },
      { name: 'head', lr: 0.01, weightDecay: 0.5, params: ['net.l2.weight'] },
      { name: 'head.no_decay', lr: 0.01, weightDecay: 0, params: ['net.l2.bias'] },
    ]);
    model.dispose();
  });

  it('excludes frozen sub-modules and the discriminator from the generator, and sets the freeze flags to match', () => {
    const model = new Toy(1);
    const sel = selectStageParams(
      model,
      stage({ trainable: ['*'], frozen: [model.net.l1], discriminator: { module: 'critic', loss: () => ({}) as never } }),
      'stage',
    );
    expect(sel.generator.map(([n]) => n)).toEqual(['net.gain', 'net.l2.weight', 'net.l2.bias']);
    expect(sel.discriminator.map(([n]) => n)).toEqual(['critic.l1.weight', 'critic.l1.bias']);
    expect(discriminatorGroups(sel.discriminator).map((g) => [g.name, g.weightDecay])).toEqual([
      ['discriminator', undefined],
      ['discriminator.no_decay', 0],
    ]);
    applyFreezing(model, sel);
    expect(model.namedTrainableVariables().map(([n]) => n)).toEqual([
      ...sel.generator.map(([n]) => n),
      ...sel.discriminator.map(([n]) => n),
    ]);
    model.dispose();
  });

  it('names what is wrong: a group matching nothing, the model as discriminator', () => {
    const model = new Toy(1);
    expect(() => selectStageParams(model, stage({ groups: [{ name: 'x', modules: ['critic'] }] }), 'stage')).toThrow(
      /groups\[0\] \("x"\) matches no trainable parameter/,
    );
    expect(() => selectStageParams(model, stage({ discriminator: { module: '*', loss: () => ({}) as never } }), 'stage')).toThrow(
      /discriminator must be a child module/,
    );
    model.dispose();
  });
});
