import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { Module, ModuleList, StateDictError } from './module';

class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(inDim: number, outDim: number, fill = 0.1) {
    super();
    this.weight = this.addParameter('weight', tf.fill([inDim, outDim], fill));
    this.bias = this.addParameter('bias', tf.zeros([outDim]));
  }
}

class Block extends Module {
  readonly fc: Linear;
  readonly running: tf.Variable;
  constructor(dim: number, fill: number) {
    super();
    this.running = this.addBuffer('running', tf.zeros([dim]));
    this.fc = this.addModule('fc', new Linear(dim, dim, fill));
  }
}

class Net extends Module {
  readonly embed: tf.Variable;
  readonly scale: tf.Variable;
  readonly blocks: ModuleList<Block>;
  readonly head: Linear;
  constructor(fill = 0.1) {
    super();
    this.embed = this.addParameter('embed', tf.fill([5, 2], fill));
    this.scale = this.addParameter('scale', tf.ones([1]), { trainable: false });
    this.blocks = this.addModule('blocks', new ModuleList([new Block(2, fill), new Block(2, fill * 2)]));
    this.head = this.addModule('head', new Linear(2, 3, fill));
  }
}

const PARAMS = [
  'embed',
  'scale',
  'blocks.0.fc.weight',
  'blocks.0.fc.bias',
  'blocks.1.fc.weight',
  'blocks.1.fc.bias',
  'head.weight',
  'head.bias',
];

async function valuesOf(m: Module): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [n, t] of Object.entries(m.stateDict())) out[n] = Array.from(await t.data());
  return out;
}

describe('Module names and structure', () => {
  it('gives dotted names through nested modules and ModuleList, in registration order', () => {
    const net = new Net();
    expect(net.namedParameters().map(([n]) => n)).toEqual(PARAMS);
    expect(net.namedBuffers().map(([n]) => n)).toEqual(['blocks.0.running', 'blocks.1.running']);
    expect(Object.keys(net.stateDict())).toEqual([
      'embed',
      'scale',
      'blocks.0.running',
      'blocks.0.fc.weight',
      'blocks.0.fc.bias',
      'blocks.1.running',
      'blocks.1.fc.weight',
      'blocks.1.fc.bias',
      'head.weight',
      'head.bias',
    ]);
    // 10 + 1 + 2·(4 + 2) + 6 + 3 (buffers excluded)
    expect(net.parameterCount()).toBe(32);
    expect(net.getModule('blocks.1.fc')).toBe(net.blocks.at(1).fc);
    expect(net.namedChildren().map(([n]) => n)).toEqual(['blocks', 'head']);
    expect(() => net.getModule('blocks.7')).toThrow(/no child "blocks.7"/);
    net.dispose();
  });

  it('ModuleList indexes, iterates and checks bounds', () => {
    const list = new ModuleList([new Linear(1, 1)]);
    list.push(new Linear(1, 2));
    expect(list.length).toBe(2);
    expect([...list].map((m) => m.weight.shape)).toEqual([
      [1, 1],
      [1, 2],
    ]);
    expect(() => list.at(2)).toThrow(/index 2 out of range \(length 2\)/);
    expect(list.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias', '1.weight', '1.bias']);
    list.dispose();
  });

  it('rejects dotted, empty and duplicate names, freeing the rejected init tensor', () => {
    class Open extends Module {
      param(name: string) {
        return this.addParameter(name, tf.zeros([1]));
      }
      buffer(name: string) {
        return this.addBuffer(name, tf.zeros([1]));
      }
      child(name: string) {
        return this.addModule(name, new ModuleList());
      }
    }
    const m = new Open();
    expect(() => m.param('a.b')).toThrow(/invalid name "a.b" \(non-empty, no dots\)/);
    expect(() => m.buffer('')).toThrow(/invalid name ""/);
    m.param('w');
    expect(() => m.buffer('w')).toThrow(/"w" is registered twice in Open/);
    m.child('c');
    expect(() => m.param('c')).toThrow(/"c" is registered twice/);
    m.dispose();
    // The leak guard in vitest.setup.ts fails this test if a rejected init tensor stayed allocated.
  });
});

describe('Module freezing', () => {
  it('freeze/unfreeze of a subtree changes trainableVariables and variable.trainable', () => {
    const net = new Net();
    const trainable = () => net.namedTrainableVariables().map(([n]) => n);
    // "scale" was registered with trainable: false.
    expect(trainable()).toEqual(PARAMS.filter((n) => n !== 'scale'));
    expect(net.scale.trainable).toBe(false);
    net.blocks.at(0).freeze();
    expect(trainable()).toEqual(['embed', 'blocks.1.fc.weight', 'blocks.1.fc.bias', 'head.weight', 'head.bias']);
    expect(net.blocks.at(0).fc.weight.trainable).toBe(false);
    expect(net.blocks.at(0).isFrozen).toBe(true);
    expect(net.isFrozen).toBe(false);
    expect(net.trainableVariables()).toEqual(net.namedTrainableVariables().map(([, v]) => v));
    // A frozen variable gets no gradient from tf.variableGrads' default variable list.
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.add(tf.sum(net.blocks.at(0).fc.weight), tf.sum(net.head.weight))));
    expect(Object.keys(grads)).toContain(net.head.weight.name);
    expect(Object.keys(grads)).not.toContain(net.blocks.at(0).fc.weight.name);
    tf.dispose([value, grads]);
    net.freeze();
    expect(trainable()).toEqual([]);
    expect(net.isFrozen).toBe(true);
    net.blocks.unfreeze();
    expect(trainable()).toEqual(['blocks.0.fc.weight', 'blocks.0.fc.bias', 'blocks.1.fc.weight', 'blocks.1.fc.bias']);
    expect(net.blocks.at(0).fc.bias.trainable).toBe(true);
    // Buffers are never trainable, whatever unfreeze does.
    net.unfreeze();
    expect(net.blocks.at(0).running.trainable).toBe(false);
    expect(trainable()).toEqual(PARAMS);
    net.dispose();
  });
});

describe('Module state dict', () => {
  it('round-trips parameters and buffers into a differently initialised model, casting int32', async () => {
    const a = new Net(0.3);
    tf.tidy(() => a.blocks.at(1).running.assign(tf.tensor1d([7, 8])));
    const b = new Net(-1);
    const result = b.loadStateDict(a.stateDict());
    expect(result).toEqual({ missing: [], unexpected: [] });
    expect(await valuesOf(b)).toEqual(await valuesOf(a));
    expect(Array.from(await b.blocks.at(1).running.data())).toEqual([7, 8]);
    // stateDict exposes the live variables (no copies).
    expect(a.stateDict().embed).toBe(a.embed);
    const ints = { ...a.stateDict(), 'head.bias': tf.tensor1d([1, 2, 3], 'int32') };
    b.loadStateDict(ints);
    expect(b.head.bias.dtype).toBe('float32');
    expect(Array.from(await b.head.bias.data())).toEqual([1, 2, 3]);
    ints['head.bias'].dispose();
    a.dispose();
    b.dispose();
  });

  it('strict: StateDictError lists every missing, unexpected and mis-shaped tensor, and assigns nothing', async () => {
    const net = new Net(0.5);
    const before = await valuesOf(net);
    const donor = new Net(2);
    const dict = { ...donor.stateDict() };
    delete dict['head.bias'];
    delete dict['blocks.0.running'];
    const extra = tf.zeros([4]);
    const wrong = tf.zeros([5, 3]);
    dict['tail.weight'] = extra;
    dict.embed = wrong;
    let err: unknown;
    try {
      net.loadStateDict(dict);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const e = err as StateDictError;
    expect(e.mismatches).toEqual([
      { name: 'embed', problem: 'shape', expected: '[5,2]', got: '[5,3]' },
      { name: 'blocks.0.running', problem: 'missing', expected: '[2]' },
      { name: 'head.bias', problem: 'missing', expected: '[3]' },
      { name: 'tail.weight', problem: 'unexpected', got: '[4]' },
    ]);
    expect(e.message).toMatch(/4 mismatch\(es\)/);
    expect(e.message).toMatch(/missing tensor "head.bias" \(expected \[3\]\)/);
    expect(e.message).toMatch(/unexpected tensor "tail.weight"/);
    expect(e.message).toMatch(/"embed": shape mismatch, expected \[5,2\], got \[5,3\]/);
    expect(e.message).toMatch(/strict: false/);
    // The entries that did match were not assigned either.
    expect(await valuesOf(net)).toEqual(before);
    tf.dispose([extra, wrong]);
    donor.dispose();
    net.dispose();
  });

  it('non-strict loads the matching subset and reports the rest; shape mismatches still throw', async () => {
    const net = new Net(0.5);
    const donor = new Net(2);
    const extra = tf.zeros([1]);
    const subset = { 'head.weight': donor.head.weight, embed: donor.embed, unknown: extra };
    const r = net.loadStateDict(subset, { strict: false });
    expect(r.unexpected).toEqual(['unknown']);
    expect(r.missing).toEqual([
      'scale',
      'blocks.0.running',
      'blocks.0.fc.weight',
      'blocks.0.fc.bias',
      'blocks.1.running',
      'blocks.1.fc.weight',
      'blocks.1.fc.bias',
      'head.bias',
    ]);
    expect(Array.from(await net.head.weight.data())).toEqual(new Array(6).fill(2));
    expect(Array.from(await net.embed.data())).toEqual(new Array(10).fill(2));
    expect(Array.from(await net.head.bias.data())).toEqual([0, 0, 0]);
    const wrong = tf.zeros([2, 2]);
    expect(() => net.loadStateDict({ 'head.weight': wrong, 'head.bias': donor.head.bias }, { strict: false })).toThrow(StateDictError);
    expect(Array.from(await net.head.bias.data())).toEqual([0, 0, 0]);
    tf.dispose([extra, wrong]);
    donor.dispose();
    net.dispose();
  });

  it('does not mistake Object.prototype members for entries', () => {
    class Odd extends Module {
      constructor() {
        super();
        this.addParameter('constructor', tf.zeros([1]));
      }
    }
    const m = new Odd();
    expect(() => m.loadStateDict({})).toThrow(/missing tensor "constructor"/);
    m.dispose();
  });
});

describe('Module dispose', () => {
  it('frees every parameter and buffer of the tree, and is safe to call twice', () => {
    const start = tf.memory().numTensors;
    const net = new Net();
    expect(tf.memory().numTensors - start).toBe(10);
    expect(net.isDisposed).toBe(false);
    net.dispose();
    expect(tf.memory().numTensors).toBe(start);
    expect(net.isDisposed).toBe(true);
    expect(net.blocks.at(1).isDisposed).toBe(true);
    net.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });
});
