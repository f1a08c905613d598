import * as tf from '@tensorflow/tfjs-core';
import { setHostReadMode } from '@ettjs/core';
import { describe, expect, it } from 'vitest';
import { asVariable } from '../test/helpers';
import { l2NormalizeRows } from './codebook-quantizer';
import { IBQQuantizer } from './ibq';
import { CodebookUsage, codePerplexity } from './usage';
import { VectorQuantizer } from './vq';

function disposeResult(r: { quantized: tf.Tensor; indices: tf.Tensor; losses: Record<string, tf.Tensor> }) {
  tf.dispose([r.quantized, r.indices, ...Object.values(r.losses)]);
}

describe('CodebookUsage and perplexity', () => {
  it('counts codes used over a rolling window of batches', () => {
    const u = new CodebookUsage(8, 2);
    u.record(Int32Array.from([0, 0, 1]));
    expect(u.usage).toBe(2 / 8);
    u.record(Int32Array.from([2, 3]));
    expect(u.usage).toBe(4 / 8);
    u.record(Int32Array.from([3])); // the first batch leaves the window
    expect(u.usage).toBe(2 / 8);
    expect(() => u.record(Int32Array.from([8]))).toThrow(/outside/);
  });

  it('perplexity is K for uniform use and 1 for a single code', () => {
    expect(codePerplexity(Int32Array.from([0, 1, 2, 3]), 4)).toBeCloseTo(4, 10);
    expect(codePerplexity(Int32Array.from([2, 2, 2]), 4)).toBeCloseTo(1, 10);
    // p = (1/2, 1/4, 1/4): H = 1.5 ln 2
    expect(codePerplexity(Int32Array.from([0, 0, 1, 2]), 4)).toBeCloseTo(Math.exp(1.5 * Math.LN2), 10);
  });
});

describe('CodebookQuantizer bookkeeping', () => {
  it('training encodes record usage; eval encodes and update() mutate nothing', async () => {
    const q = new IBQQuantizer({ codebookSize: 16, codeDim: 4, deadCodeRestart: { kind: 'batch-samples', afterSteps: 1 } });
    const z = tf.randomNormal([6, 4], 0, 1, 'float32', 5);
    const before = await q.embedding.data();
    q.eval();
    const r1 = q.quantize(z);
    expect(q.usage).toBe(0);
    expect(q.pendingBatches).toBe(0);
    expect(q.update()).toEqual({ batches: 0, restarted: 0 });
    expect(await q.embedding.data()).toEqual(before);
    const used = new Set(await r1.indices.data()).size;
    expect(r1.stats.usage).toBe(used / 16); // eval: this batch alone
    q.train();
    const r2 = q.quantize(z);
    expect(q.pendingBatches).toBe(1);
    expect(r2.stats.usage).toBe(used / 16);
    const r3 = q.quantize(z, { training: false }); // per-call override
    expect(q.pendingBatches).toBe(1);
    [r1, r2, r3].forEach(disposeResult);
    z.dispose();
    q.dispose();
  });

  it('EMA update equals the hand computation (decay, Laplace smoothing)', async () => {
    const decay = 0.5;
    const eps = 1e-5;
    const q = new VectorQuantizer({ codebookSize: 2, codeDim: 1, codebookUpdate: { kind: 'ema', decay, epsilon: eps } });
    tf.tidy(() => {
      q.embedding.assign(tf.tensor2d([[0], [10]]));
      (q.namedBuffers().find(([n]) => n === 'ema_embed_sum')?.[1] as tf.Variable).assign(tf.tensor2d([[0], [10]]));
    });
    const z = tf.tensor2d([[1], [3], [9]]); // codes 0, 0, 1
    disposeResult(q.quantize(z));
    expect(q.update()).toEqual({ batches: 1, restarted: 0 });
    // cluster sizes: 0.5·1 + 0.5·2 = 1.5 and 0.5·1 + 0.5·1 = 1; sums: 0.5·0 + 0.5·4 = 2 and 0.5·10 + 0.5·9 = 9.5
    const n = 2.5;
    const smooth = (c: number) => ((c + eps) / (n + 2 * eps)) * n;
    const e = await q.embedding.data();
    expect(e[0]).toBeCloseTo(2 / smooth(1.5), 5);
    expect(e[1]).toBeCloseTo(9.5 / smooth(1), 5);
    z.dispose();
    q.dispose();
  });

  it('deferred reads (WebGPU): keeps batches on the device until settle(), then updates as the synchronous path', async () => {
    const run = async (mode: 'sync' | 'deferred') => {
      setHostReadMode(mode);
      try {
        const decay = 0.5;
        const q = new VectorQuantizer({ codebookSize: 2, codeDim: 1, codebookUpdate: { kind: 'ema', decay, epsilon: 1e-5 } });
        tf.tidy(() => {
          q.embedding.assign(tf.tensor2d([[0], [10]]));
          (q.namedBuffers().find(([n]) => n === 'ema_embed_sum')?.[1] as tf.Variable).assign(tf.tensor2d([[0], [10]]));
        });
        const seen: { usage: number; perplexity: number }[] = [];
        for (const rows of [
          [[1], [3], [9]],
          [[Number.NaN], [2], [8]],
          [[4], [6], [11]],
        ]) {
          const z = tf.tensor2d(rows);
          const r = q.quantize(z);
          seen.push({ usage: r.stats.usage, perplexity: r.stats.perplexity });
          disposeResult(r);
          z.dispose();
        }
        const unsettled = q.unsettledBatches;
        if (mode === 'deferred') expect(() => q.update()).toThrow(/call `await quantizer.settle\(\)`/);
        await q.settle();
        // The batch with a NaN latent is left out of the EMA (it would turn the codebook into NaN).
        const pending = q.pendingBatches;
        const report = q.update();
        const embedding = Array.from(await q.embedding.data());
        q.dispose();
        return { seen, unsettled, pending, report, embedding };
      } finally {
        setHostReadMode('auto');
      }
    };
    const before = tf.memory().numTensors;
    const sync = await run('sync');
    const deferred = await run('deferred');
    expect(tf.memory().numTensors).toBe(before);
    expect(sync.unsettled).toBe(0);
    expect(deferred.unsettled).toBe(3);
    expect(sync.pending).toBe(2);
    expect(deferred.pending).toBe(2);
    expect(deferred.report).toEqual({ batches: 2, restarted: 0 });
    expect(deferred.embedding).toEqual(sync.embedding);
    expect(sync.embedding.every(Number.isFinite)).toBe(true);
    // Hand EMA over the two finite batches (codes 0,0,1 for 1,3,9 and 0,1,1 for 4,6,11): counts 3, 3;
    // sums 8, 26; cluster sizes 0.5·1 + 0.5·3 = 2; embed sums 0.5·0 + 0.5·8 = 4, 0.5·10 + 0.5·26 = 18.
    expect(sync.embedding[0]).toBeCloseTo(4 / 2, 4);
    expect(sync.embedding[1]).toBeCloseTo(18 / 2, 4);
    // Deferred stats are not read in the step: NaN until a settle.
    expect(deferred.seen.every((s) => Number.isNaN(s.perplexity))).toBe(true);
    expect(sync.seen[0].perplexity).toBeCloseTo(codePerplexity(Int32Array.from([0, 0, 1]), 2), 6);
  });

  it('dead-code restart replaces codes unused for N updates with batch latents', async () => {
    const q = new VectorQuantizer({ codebookSize: 4, codeDim: 2, deadCodeRestart: { kind: 'batch-samples', afterSteps: 2 } });
    tf.tidy(() =>
      q.embedding.assign(
        tf.tensor2d([
          [1, 0],
          [0, 1],
          [50, 50],
          [-50, 50],
        ]),
      ),
    );
    const z = tf.tensor2d([
      [0.9, 0.1],
      [0.2, 0.8],
      [1.1, -0.1],
    ]); // always codes 0 and 1
    disposeResult(q.quantize(z));
    expect(q.update().restarted).toBe(0); // one unused step: not yet
    disposeResult(q.quantize(z));
    expect(q.update().restarted).toBe(2);
    const e = Array.from(await q.embedding.data());
    const latents = [
      [0.9, 0.1],
      [0.2, 0.8],
      [1.1, -0.1],
    ].map((r) => r.map(Math.fround).join());
    expect(e.slice(0, 4)).toEqual([1, 0, 0, 1]);
    for (const code of [2, 3]) expect(latents).toContain(e.slice(code * 2, code * 2 + 2).join());
    z.dispose();
    q.dispose();
  });

  it('a frozen codebook is not trainable; state names are stable', () => {
    const q = new IBQQuantizer({ codebookSize: 4, codeDim: 2, frozen: true });
    expect(q.trainableVariables()).toHaveLength(0);
    expect(Object.keys(q.stateDict())).toEqual(['embedding']);
    const ema = new VectorQuantizer({ codebookSize: 4, codeDim: 2, codebookUpdate: { kind: 'ema', decay: 0.99 } });
    expect(Object.keys(ema.stateDict())).toEqual(['embedding', 'ema_cluster_size', 'ema_embed_sum']);
    q.dispose();
    ema.dispose();
  });

  it('a training step with update() is leak-free', async () => {
    const q = new IBQQuantizer({ codebookSize: 8, codeDim: 3, deadCodeRestart: { kind: 'batch-samples', afterSteps: 1 } });
    const z = asVariable(tf.zeros([5, 3]));
    const opt = tf.train.sgd(0.1);
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      tf.tidy(() => z.assign(tf.randomNormal([5, 3], 0, 1, 'float32', i)));
      const cost = opt.minimize(() => {
        const r = q.quantize(z);
        return tf.add(r.losses.quant, tf.mul(r.losses.entropy, 0.05)) as tf.Scalar;
      }, true);
      cost?.dispose();
      q.update();
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts.slice(1)).size).toBe(1);
    opt.dispose();
    z.dispose();
    q.dispose();
  });

  it('rejects bad options before allocating anything', () => {
    expect(() => new VectorQuantizer({ codebookSize: 1, codeDim: 2 })).toThrow(/codebookSize/);
    expect(() => new VectorQuantizer({ codebookSize: 4, codeDim: 2, codebookUpdate: { kind: 'ema', decay: 1 } })).toThrow(/decay/);
    expect(() => new IBQQuantizer({ codebookSize: 4, codeDim: 2, deadCodeRestart: { kind: 'batch-samples', afterSteps: 0 } })).toThrow(
      /afterSteps/,
    );
  });
});

describe('l2NormalizeRows', () => {
  it('divides rows by their l2 norm (a zero row stays 0), with gradient (I − n nᵀ)·w / ‖x‖', () => {
    const rows = [
      [3, 4, 0],
      [0, 0, 0],
      [1, -2, 2],
    ];
    const w = [0.5, -1, 2];
    const [y, g] = tf.tidy(() => {
      const x = tf.tensor2d(rows);
      const wt = tf.tensor1d(w);
      const f = (t: tf.Tensor) => tf.sum(tf.mul(l2NormalizeRows(t as tf.Tensor2D), wt));
      // rows 0 and 2 only: at the zero row sqrt's gradient is infinite (as F.normalize's)
      const keep = tf.tensor2d([[1], [0], [1]]);
      return [
        l2NormalizeRows(x).arraySync(),
        tf
          .grad((t: tf.Tensor) => f(tf.mul(t, keep)))(x)
          .arraySync(),
      ];
    });
    const [ys, gs] = [y as number[][], g as number[][]];
    const norms = [5, 0, 3];
    for (const [i, r] of rows.entries()) for (const [j, v] of r.entries()) expect(ys[i]![j]).toBeCloseTo(norms[i] ? v / norms[i]! : 0, 6);
    for (const i of [0, 2]) {
      const n = rows[i]!.map((v) => v / norms[i]!);
      const nw = n.reduce((a, v, j) => a + v * w[j]!, 0);
      for (const [j, nj] of n.entries()) expect(gs[i]![j]).toBeCloseTo((w[j]! - nj * nw) / norms[i]!, 5);
    }
  });
});
