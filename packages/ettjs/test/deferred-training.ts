// A tiny ETT model and a two-stage run (stage 2 ETT with the critic, then stage 3 gen) through the
// Trainer, shared by the tests of training where host reads are deferred (WebGPU) and synchronous.
import { AutoregressiveLM, ByteTokenizer } from '@ettjs/autoregressive-lm';
import { Rng } from '@ettjs/core';
import { createVisualAdapter } from '@ettjs/projector';
import { type FitResult, type StepRecord, Trainer } from '@ettjs/trainer';
import { VQ_TOKENIZER_TINY, VQTokenizer } from '@ettjs/vector-quantizer';
import * as tf from '@tensorflow/tfjs-core';
import { GanCritic } from '../src/critic';
import { ETTModel } from '../src/ett-model';
import { type ETTBatch, postTrainingGen, semantic } from '../src/recipes';

export const CODES = 16;

/** Seeded (seed 0 everywhere): two calls build identical weights. Dead codes restart after one unused step, so `update()` uses the latents. */
export function tinyModel(): ETTModel {
  const text = new ByteTokenizer();
  const tokenizer = new VQTokenizer({
    ...VQ_TOKENIZER_TINY,
    ch: 8,
    zChannels: 8,
    codeDim: 8,
    codebookSize: CODES,
    normGroups: 4,
    quantizer: {
      kind: 'ibq',
      options: { ...VQ_TOKENIZER_TINY.quantizer.options, deadCodeRestart: { kind: 'batch-samples', afterSteps: 1 } },
    },
  });
  const lm = new AutoregressiveLM(
    {
      vocabSize: text.vocabSize,
      hiddenSize: 16,
      intermediateSize: 32,
      numLayers: 1,
      numHeads: 2,
      numKVHeads: 1,
      maxPositionEmbeddings: 64,
      visualVocabSize: CODES,
    },
    { seed: 0 },
  );
  const adapter = createVisualAdapter({ kind: 'projector', inputDim: 8, outputDim: 16, seed: 0 });
  return new ETTModel({
    tokenizer,
    adapter,
    lm,
    text,
    imageSize: 16,
    discriminator: new GanCritic({ baseChannels: 4, layers: 1, seed: 0 }),
  });
}

/** `n` different batches of 2 images in [-1, 1] with byte captions; `nanAt` puts a NaN pixel in that batch. */
export function batches(n: number, nanAt = -1): { images: Float32Array; captions: number[][] }[] {
  return Array.from({ length: n }, (_, i) => {
    const rng = new Rng(100 + i); // plain numbers: no read from whichever backend is active
    const images = Float32Array.from({ length: 2 * 16 * 16 * 3 }, () => Math.tanh(rng.normal()));
    if (i === nanAt) images[37] = Number.NaN;
    return { images, captions: [Array.from(`a ${i}`, (c) => c.charCodeAt(0)), Array.from(`b ${i}!`, (c) => c.charCodeAt(0))] };
  });
}

/** A data source over `data`, cycling; tensors are made on the active backend when asked for. */
export function source(data: { images: Float32Array; captions: number[][] }[]) {
  let i = 0;
  return {
    next: (): ETTBatch => {
      const b = data[i++ % data.length];
      return { images: tf.tensor4d(b.images, [2, 16, 16, 3]), captions: b.captions };
    },
    cursor: () => i,
    restore: (c: unknown) => {
      i = c as number;
    },
  };
}

/** Stage 2 (ETT, α 0.25, critic) for `semanticSteps`, then stage 3 gen for `genSteps`. */
export async function fitTiny(
  model: ETTModel,
  data: { images: Float32Array; captions: number[][] }[],
  semanticSteps: number,
  genSteps: number,
  onStep?: (r: StepRecord) => void,
): Promise<FitResult> {
  const trainer = new Trainer<ETTBatch>({
    model,
    data: source(data),
    stages: [
      semantic(model, { steps: semanticSteps, lr: 1e-3, arm: 'ett', alpha: 0.25 }),
      postTrainingGen(model, { steps: genSteps, lr: 1e-3 }),
    ],
    seed: 5,
    progress: 'none',
    onStep,
  });
  return trainer.fit();
}

/** Every parameter and buffer of the model as plain arrays (awaited reads: works on WebGPU). */
export async function weights(model: ETTModel): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(model.stateDict())) out[name] = Array.from(await t.data());
  return out;
}
