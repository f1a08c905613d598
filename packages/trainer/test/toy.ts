import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import type { DataSource, LossOutput, StepContext } from '../src/index';

/** Deterministic pseudo-random numbers from an integer key (no tf RNG, so data never depends on backend state). */
function hashUnit(key: number): number {
  let h = Math.imul(key ^ 0x5bd1e995, 0x27d4eb2d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return ((h >>> 0) / 2 ** 32) * 2 - 1;
}

class Dense extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(inDim: number, outDim: number, seed: number) {
    super();
    const w = Array.from({ length: inDim * outDim }, (_, i) => hashUnit(seed * 1000 + i) / Math.sqrt(inDim));
    this.weight = this.addParameter('weight', tf.tensor2d(w, [inDim, outDim]));
    this.bias = this.addParameter('bias', tf.zeros([outDim]));
  }
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(x, this.weight), this.bias) as tf.Tensor2D;
  }
}

/** A two-layer regressor with a norm-like gain vector (rank 1: no weight decay). */
export class Net extends Module {
  readonly l1: Dense;
  readonly l2: Dense;
  readonly gain: tf.Variable;
  constructor(seed: number, hidden = 8) {
    super();
    this.l1 = this.addModule('l1', new Dense(4, hidden, seed));
    this.l2 = this.addModule('l2', new Dense(hidden, 1, seed + 1));
    this.gain = this.addParameter('gain', tf.ones([hidden]));
  }
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return this.l2.forward(tf.mul(tf.tanh(this.l1.forward(x)), this.gain) as tf.Tensor2D);
  }
}

/** Scores (x, y) pairs; real pairs should score high. */
export class Critic extends Module {
  readonly l1: Dense;
  constructor(seed: number) {
    super();
    this.l1 = this.addModule('l1', new Dense(5, 1, seed));
  }
  forward(x: tf.Tensor2D, y: tf.Tensor2D): tf.Tensor2D {
    return this.l1.forward(tf.concat([x, y], 1) as tf.Tensor2D);
  }
}

export class Toy extends Module {
  readonly net: Net;
  readonly critic: Critic;
  constructor(seed: number, hidden = 8) {
    super();
    this.net = this.addModule('net', new Net(seed, hidden));
    this.critic = this.addModule('critic', new Critic(seed + 7));
  }
}

export interface ToyBatch {
  x: tf.Tensor2D;
  y: tf.Tensor2D;
  /** Batch index, for tests that poison particular batches. */
  index: number;
}

/** A repeating synthetic regression stream whose cursor is the batch index. */
export class ToySource implements DataSource<ToyBatch> {
  index = 0;
  constructor(
    readonly batchSize = 4,
    readonly length = Number.POSITIVE_INFINITY,
  ) {}
  next(): ToyBatch | undefined {
    if (this.index >= this.length) return undefined;
    const i = this.index++;
    const xs = Array.from({ length: this.batchSize * 4 }, (_, j) => hashUnit(i * 97 + j));
    const ys = Array.from(
      { length: this.batchSize },
      (_, r) => Math.sin(xs[r * 4] * 2) + 0.5 * xs[r * 4 + 1] * xs[r * 4 + 2] - xs[r * 4 + 3],
    );
    return { x: tf.tensor2d(xs, [this.batchSize, 4]), y: tf.tensor2d(ys, [this.batchSize, 1]), index: i };
  }
  cursor(): unknown {
    return { index: this.index };
  }
  restore(cursor: unknown): void {
    this.index = (cursor as { index: number }).index;
  }
}

export function mseLoss(model: Toy) {
  return (b: ToyBatch, _ctx: StepContext): LossOutput => {
    const mse = tf.mean(tf.square(tf.sub(model.net.forward(b.x), b.y))) as tf.Scalar;
    const l2 = tf.mul(tf.sum(tf.square(model.net.l2.weight)), 1e-3) as tf.Scalar;
    return { total: tf.add(mse, l2) as tf.Scalar, components: { mse, l2 }, stats: { batch: b.index } };
  };
}

/** Generator loss with an adversarial term from the critic. */
export function ganGeneratorLoss(model: Toy) {
  const base = mseLoss(model);
  return (b: ToyBatch, ctx: StepContext): LossOutput => {
    const out = base(b, ctx);
    const gan = tf.mul(tf.neg(tf.mean(model.critic.forward(b.x, model.net.forward(b.x)))), 0.1) as tf.Scalar;
    return { total: tf.add(out.total, gan) as tf.Scalar, components: { ...out.components, gan } };
  };
}

/** Hinge loss for the critic; the fake pairs come from the generator (only critic parameters get gradients). */
export function criticLoss(model: Toy) {
  return (b: ToyBatch, _ctx: StepContext): LossOutput => {
    const real = model.critic.forward(b.x, b.y);
    const fake = model.critic.forward(b.x, model.net.forward(b.x));
    const hinge = tf.add(tf.mean(tf.relu(tf.sub(1, real))), tf.mean(tf.relu(tf.add(1, fake)))) as tf.Scalar;
    return { total: hinge, components: { hinge } };
  };
}

export async function snapshot(m: Module): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [n, t] of Object.entries(m.stateDict())) out[n] = Array.from(await t.data());
  return out;
}
