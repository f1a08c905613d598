import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { expectClose, reference } from '../test/helpers';
import { codebookEntropyLoss } from './entropy';

describe('codebookEntropyLoss', () => {
  for (const c of reference.entropy) {
    it(`value and gradients match the PyTorch reference of IBQ's compute_entropy_loss (T ${c.temperature})`, async () => {
      const z = tf.tensor2d(c.z, [c.n, c.d]);
      const e = tf.tensor2d(c.codebook, [c.k, c.d]);
      for (const maxBlockElements of [1 << 22, c.k * 2]) {
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          codebookEntropyLoss(a as tf.Tensor2D, b as tf.Tensor2D, { temperature: c.temperature, maxBlockElements }),
        );
        const loss = codebookEntropyLoss(z, e, { temperature: c.temperature, maxBlockElements });
        const [gz, ge] = g([z, e]);
        expectClose(await loss.data(), [c.loss], 1e-4);
        // T = 0.01 saturates the softmax in float32; the gradient is ~0 there and compared loosely.
        const tol = c.temperature < 0.05 ? 1e-2 : 1e-4;
        expectClose(await gz.data(), c.gradZ, tol);
        expectClose(await ge.data(), c.gradCodebook, tol);
        tf.dispose([loss, gz, ge]);
      }
      tf.dispose([z, e]);
    });
  }

  it('is low for confident, spread-out assignments and high for a collapsed codebook', async () => {
    // Four tokens on four orthogonal codes (confident, all used) vs four tokens all nearest one code.
    const e = tf.eye(4) as tf.Tensor2D;
    const spread = tf.mul(e, 5) as tf.Tensor2D;
    const collapsed = tf.tensor2d([5, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0], [4, 4]);
    const a = codebookEntropyLoss(spread, e, { temperature: 0.1, maxBlockElements: 1 << 22 });
    const b = codebookEntropyLoss(collapsed, e, { temperature: 0.1, maxBlockElements: 1 << 22 });
    const [av, bv] = [(await a.data())[0], (await b.data())[0]];
    expect(av).toBeCloseTo(-Math.log(4), 3); // H_sample ≈ 0, H(p̄) = log 4
    expect(bv).toBeCloseTo(0, 3); // H_sample ≈ 0, H(p̄) ≈ 0
    tf.dispose([e, spread, collapsed, a, b]);
  });

  it('rejects a non-positive temperature', () => {
    const z = tf.zeros([2, 2]) as tf.Tensor2D;
    expect(() => codebookEntropyLoss(z, z, { temperature: 0, maxBlockElements: 100 })).toThrow(/temperature/);
    z.dispose();
  });
});
