import { AutoregressiveLM, ByteTokenizer } from '@ettjs/autoregressive-lm';
import { createVisualAdapter } from '@ettjs/projector';
import type { StepContext } from '@ettjs/trainer';
import { VQ_TOKENIZER_TINY, VQTokenizer } from '@ettjs/vector-quantizer';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { GanCritic } from './critic';
import { ETTModel } from './ett-model';
import { semantic, textPretraining, tokenizerPretraining } from './recipes';

function model(quantizer: 'vq' | 'ibq', withCritic = false) {
  const text = new ByteTokenizer();
  const tokenizer = new VQTokenizer({
    ...VQ_TOKENIZER_TINY,
    ch: 8,
    zChannels: 8,
    codeDim: 8,
    codebookSize: 32,
    normGroups: 4,
    quantizer: { kind: quantizer },
  });
  const lm = new AutoregressiveLM({
    vocabSize: text.vocabSize,
    hiddenSize: 16,
    intermediateSize: 32,
    numLayers: 1,
    numHeads: 2,
    numKVHeads: 1,
    maxPositionEmbeddings: 64,
  });
  const adapter = createVisualAdapter({ kind: 'projector', inputDim: 8, outputDim: 16 });
  const discriminator = withCritic ? new GanCritic({ baseChannels: 4, layers: 1 }) : undefined;
  return new ETTModel({ tokenizer, adapter, lm, text, imageSize: 16, discriminator });
}

const ctx = (m: ETTModel): StepContext => ({ stage: 's', step: 0, stageStep: 0, microStep: 0, seed: 0, model: m });

describe('recipes', () => {
  it('the critic step encodes in eval mode: the quantizer records only the generator batch of a step', async () => {
    const m = model('ibq', true);
    const stage = tokenizerPretraining(m, { steps: 1 });
    const images = tf.randomUniform([2, 16, 16, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
    const batch = { images, captions: [[65], [66]] } as unknown as Parameters<typeof stage.loss>[0];
    const quantizer = (m.tokenizer as VQTokenizer).quantize;
    const d = stage.discriminator!.loss(batch, ctx(m));
    tf.dispose([d.total, ...Object.values(d.components ?? {})]);
    expect(quantizer.pendingBatches).toBe(0);
    const g = stage.loss(batch, ctx(m));
    tf.dispose([g.total, ...Object.values(g.components ?? {})]);
    expect(quantizer.pendingBatches).toBe(1);
    await stage.afterStep?.(ctx(m));
    expect(quantizer.pendingBatches).toBe(0);
    images.dispose();
    m.dispose();
  });

  it("weights a classic-VQ tokenizer's own terms (codebook, commitment) without extra config", () => {
    const m = model('vq');
    const images = tf.tidy(() => tf.tanh(tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', 7))) as tf.Tensor4D;
    const parts = tf.tidy(() => {
      const out = tokenizerPretraining(m, { steps: 1 }).loss({ images, captions: [[65], [66]] }, ctx(m));
      return {
        total: out.total.dataSync()[0],
        names: Object.keys(out.components ?? {}).sort(),
        c: out.components!.codebook.dataSync()[0],
        k: out.components!.commitment.dataSync()[0],
        r: out.components!.reconstruction.dataSync()[0],
        p: out.components!.perceptual.dataSync()[0],
      };
    });
    expect(parts.names).toEqual(['codebook', 'commitment', 'perceptual', 'reconstruction']);
    // L_vq = L1 + λ_p·perceptual + codebook + β·commitment with the quantizer's β = 0.25 and no GAN (no critic).
    expect(parts.total).toBeCloseTo(parts.r + parts.p + parts.c + 0.25 * parts.k, 4);
    // The loss trains the decoder, the codebook and the encoder (intermediates disposed inside the tape are safe).
    const stage = tokenizerPretraining(m, { steps: 1 });
    const named = m.tokenizer.namedTrainableVariables();
    const norms = tf.tidy(() => {
      const { grads } = tf.variableGrads(
        () => stage.loss({ images, captions: [[65], [66]] }, ctx(m)).total,
        named.map(([, v]) => v),
      );
      return Object.fromEntries(named.map(([n, v]) => [n, grads[v.name] ? tf.norm(grads[v.name]).dataSync()[0] : 0]));
    });
    for (const n of ['decoder.conv_out.weight', 'quantize.embedding', 'encoder.conv_in.weight']) expect(norms[n], n).toBeGreaterThan(0);
    images.dispose();
    m.dispose();
  });

  it('makes the arms differ exactly in what trains and in the loss', () => {
    const m = model('ibq');
    const ett = semantic(m, { steps: 1, arm: 'ett' });
    const frozen = semantic(m, { steps: 1, arm: 'frozen-embedding' });
    const captionOnly = semantic(m, { steps: 1, arm: 'caption-only' });
    expect(ett.trainable).toEqual(['tokenizer', 'adapter', 'lm']);
    expect(frozen.trainable).toEqual(['adapter', 'lm']);
    expect(captionOnly.trainable).toEqual(['tokenizer', 'adapter', 'lm']);
    const images = tf.zeros([2, 16, 16, 3]) as tf.Tensor4D;
    const names = (stage: typeof ett) =>
      tf.tidy(() => Object.keys(stage.loss({ images, captions: [[65], [66]] }, ctx(m)).components ?? {}).sort());
    expect(names(ett)).toEqual(expect.arrayContaining(['caption', 'vq', 'vq.reconstruction', 'vq.quant']));
    expect(names(captionOnly)).toEqual(['accuracy', 'caption']);
    expect(names(frozen)).toEqual(['accuracy', 'caption']);
    const text = textPretraining(m, { steps: 1 });
    expect(text.trainable).toEqual(['lm']);
    expect(names(text)).toEqual(['accuracy', 'text']);
    images.dispose();
    m.dispose();
  });
});
