import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateDictError, type VisualAdapter, assertNoLeaks } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdapterCheckpointError } from './adapter-checkpoint';
import { CodebookProjector } from './codebook-projector';
import { IndexEmbedding } from './index-embedding';
import { createVisualAdapter, loadVisualAdapter } from './visual-adapter';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ettjs-projector-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function outputs(adapter: VisualAdapter, d: number): Promise<Float32Array> {
  const q = tf.randomNormal([2, 3, d], 0, 1, 'float32', 1) as tf.Tensor3D;
  const indices = tf.tensor2d(
    [
      [0, 1, 2],
      [3, 3, 0],
    ],
    undefined,
    'int32',
  );
  const y = adapter.apply({ quantized: q, indices });
  const data = (await y.data()) as Float32Array;
  tf.dispose([q, indices, y]);
  return data;
}

describe('createVisualAdapter', () => {
  it('builds the ETT projector or the index baseline from one options object', () => {
    const p = createVisualAdapter({ kind: 'projector', inputDim: 4, outputDim: 8 });
    const e = createVisualAdapter({ kind: 'index', codebookSize: 16, outputDim: 8 });
    expect(p).toBeInstanceOf(CodebookProjector);
    expect(e).toBeInstanceOf(IndexEmbedding);
    expect([p.outputDim, e.outputDim]).toEqual([8, 8]);
    expect(() => createVisualAdapter({ kind: 'mlp' } as never)).toThrow(/kind must be 'projector' or 'index', got "mlp"/);
    expect(() => createVisualAdapter({ kind: 'index', codebookSize: 16, outputDim: 8, depth: 2 } as never)).toThrow(
      /unknown config key\(s\) "depth"/,
    );
    p.dispose();
    e.dispose();
  });
});

describe('savePretrained / fromPretrained', () => {
  it('round-trips the projector: config.json + model.safetensors, identical outputs', async () => {
    const p = new CodebookProjector({ inputDim: 4, outputDim: 6, depth: 3, hiddenDim: 5, activation: 'gelu-tanh', seed: 2 });
    const path = join(dir, 'projector');
    await p.savePretrained(path);
    expect(JSON.parse(await readFile(join(path, 'config.json'), 'utf8'))).toEqual({
      kind: 'projector',
      inputDim: 4,
      outputDim: 6,
      depth: 3,
      hiddenDim: 5,
      activation: 'gelu-tanh',
      bias: true,
    });
    const q = await CodebookProjector.fromPretrained(path);
    expect(q.config).toEqual({ ...p.config, seed: undefined });
    expect(Array.from(await outputs(q, 4))).toEqual(Array.from(await outputs(p, 4)));
    const viaFactory = await loadVisualAdapter(path);
    expect(viaFactory).toBeInstanceOf(CodebookProjector);
    viaFactory.dispose();
    p.dispose();
    q.dispose();
  });

  it('round-trips the index table and loadVisualAdapter picks the saved kind', async () => {
    const e = new IndexEmbedding({ codebookSize: 4, outputDim: 6, initStd: 0.5 });
    const path = join(dir, 'index');
    await e.savePretrained(path);
    const loaded = await loadVisualAdapter(path);
    expect(loaded).toBeInstanceOf(IndexEmbedding);
    expect(Array.from(await outputs(loaded, 4))).toEqual(Array.from(await outputs(e, 4)));
    await expect(CodebookProjector.fromPretrained(path)).rejects.toThrow(/holds a "index" adapter, not "projector"/);
    e.dispose();
    loaded.dispose();
  });

  it('fails clearly, leaking nothing, for a missing dir, a bad kind, or weights from another config', async () => {
    await expect(loadVisualAdapter(join(dir, 'nope'))).rejects.toThrow(AdapterCheckpointError);
    await expect(loadVisualAdapter(join(dir, 'nope'))).rejects.toThrow(/cannot read config.json/);
    const path = join(dir, 'mismatch');
    const p = new CodebookProjector({ inputDim: 4, outputDim: 6 });
    await p.savePretrained(path);
    p.dispose();
    // Someone edits the config: the weights no longer fit, and the error lists every tensor.
    await writeFile(join(path, 'config.json'), JSON.stringify({ kind: 'projector', inputDim: 5, outputDim: 6 }));
    await assertNoLeaks(async () => {
      await expect(CodebookProjector.fromPretrained(path)).rejects.toThrow(StateDictError);
    }, 'failed load');
    await expect(CodebookProjector.fromPretrained(path)).rejects.toThrow(
      /"layers.0.weight": shape mismatch, expected \[6,5\], got \[6,4\]/,
    );
    await writeFile(join(path, 'config.json'), JSON.stringify({ kind: 'conv', inputDim: 4 }));
    await expect(loadVisualAdapter(path)).rejects.toThrow(/"kind" must be "projector" or "index", got "conv"/);
  });
});
