import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { expectClose, reference, take } from '../test/helpers';
import { type FeatureNetwork, LpipsLoss, lpipsDistance } from './perceptual';
import { StructuralLoss } from './structural';

describe('StructuralLoss (weight-free perceptual substitute) against PyTorch', () => {
  it('matches the loss and its gradient', async () => {
    const s = reference.structural;
    const x = tf.tensor4d(s.x);
    const y = tf.tensor4d(s.y);
    const loss = new StructuralLoss();
    expect(loss.kind).toBe('structural');
    expectClose(await take(loss.compute(x, y)), [s.loss], 1e-5, 1e-4);
    const g = tf.grad((t: tf.Tensor) => loss.compute(x, t as tf.Tensor4D))(y);
    expectClose(await take(g), (s.gradY as number[][][][]).flat(3), 1e-6, 2e-3);
    tf.dispose([x, y]);
  });

  it('is 0 for identical images and says when images are too small', async () => {
    const x = tf.randomUniform([1, 12, 12, 3], -1, 1, 'float32', 1) as tf.Tensor4D;
    expectClose(await take(new StructuralLoss().compute(x, x)), [0], 1e-6);
    expect(() => new StructuralLoss({ scales: 4 }).compute(x, x)).toThrow(/too small for 4 scales \(need ≥ 24\)/);
    expect(() => new StructuralLoss({ scales: 0 })).toThrow(/scales/);
    x.dispose();
  });
});

describe('LPIPS', () => {
  it('lpipsDistance matches PyTorch on given features and lin weights', async () => {
    const h = reference.lpipsHead;
    const r = tf.tidy(() =>
      lpipsDistance(
        h.featuresX.map((f: number[][][][]) => tf.tensor4d(f)),
        h.featuresY.map((f: number[][][][]) => tf.tensor4d(f)),
        h.lin.map((w: number[]) => tf.tensor1d(w)),
      ),
    );
    expectClose(await take(r), [h.loss], 1e-6, 1e-5);
  });

  /** A stand-in for VGG16: two fixed 1×1 "layers". */
  class TinyFeatures extends Module implements FeatureNetwork {
    readonly w: tf.Variable;
    constructor() {
      super();
      this.w = this.addParameter(
        'w',
        tf.tensor2d([
          [1, 0],
          [0, 2],
          [1, 1],
        ]),
      );
    }
    features(x: tf.Tensor4D): tf.Tensor4D[] {
      const [B, H, W, C] = x.shape;
      const a = tf.reshape(tf.matMul(tf.reshape(x, [B * H * W, C]), this.w), [B, H, W, 2]) as tf.Tensor4D;
      return [x, tf.relu(a)];
    }
  }

  it('LpipsLoss runs a user network, loads lin weights by name, freezes them, and applies the scaling layer', async () => {
    const lp = new LpipsLoss(new TinyFeatures(), { channels: [3, 2] });
    expect(lp.kind).toBe('lpips');
    expect(Object.keys(lp.stateDict())).toEqual(['lin0', 'lin1', 'net.w']);
    expect(lp.trainableVariables()).toEqual([]);
    const x = tf.randomUniform([2, 3, 3, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
    const y = tf.randomUniform([2, 3, 3, 3], -1, 1, 'float32', 6) as tf.Tensor4D;
    const lin = [tf.tensor1d([0.1, 0.2, 0.3]), tf.tensor1d([0.5, 0.7])];
    lp.loadStateDict({ lin0: lin[0], lin1: lin[1] }, { strict: false });
    const expected = tf.tidy(() => {
      const prep = (im: tf.Tensor4D) =>
        tf.div(tf.sub(im, tf.tensor1d([-0.03, -0.088, -0.188])), tf.tensor1d([0.458, 0.448, 0.45])) as tf.Tensor4D;
      const net = lp.network as TinyFeatures;
      return lpipsDistance(net.features(prep(x)), net.features(prep(y)), lin as tf.Tensor1D[]);
    });
    expectClose(await take(lp.compute(x, y)), await take(expected), 1e-7);
    const g = tf.grad((t: tf.Tensor) => lp.compute(x, t as tf.Tensor4D))(y); // gradient reaches the reconstruction
    expect((await take(tf.tidy(() => tf.sum(tf.abs(g))))).at(0)).toBeGreaterThan(0);
    g.dispose();
    tf.dispose([x, y, ...lin]);
    lp.dispose();
  });
});
