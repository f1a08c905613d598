// Stage 3 gen: the LM learns to predict the tokenizer's code indices after a caption (its visual
// head over the codebook), then samples codes for new captions, which the tokenizer decodes.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AutoregressiveLM, ByteTokenizer } from '@ettjs/autoregressive-lm';
import { initBackend } from '@ettjs/backend';
import { encodePng, imageGrid, SyntheticTextImages } from '@ettjs/data';
import { createVisualAdapter } from '@ettjs/projector';
import { type Stage, Trainer } from '@ettjs/trainer';
import { VQ_TOKENIZER_TINY, VQTokenizer } from '@ettjs/vector-quantizer';
import * as tf from '@tensorflow/tfjs-core';
import { type ETTBatch, ETTModel, postTrainingGen, syntheticSource, tokenizerPretraining } from 'ettjs';

const DEFAULT_PROMPTS = [
  'a red circle on the left. text: K7.',
  'a blue square on the right. text: A2.',
  'a green triangle at the top. text: Q9.',
  'a yellow circle at the bottom. text: 5X.',
];

const { values: args } = parseArgs({
  options: {
    'tokenizer-steps': { type: 'string', default: '10' },
    'gen-steps': { type: 'string', default: '20' },
    'batch-size': { type: 'string', default: '8' },
    'tokenizer-lr': { type: 'string', default: '2e-3' },
    'gen-lr': { type: 'string', default: '2e-3' },
    prompt: { type: 'string', multiple: true },
    temperature: { type: 'string', default: '1' },
    'top-k': { type: 'string', default: '50' },
    greedy: { type: 'boolean', default: false },
    seed: { type: 'string', default: '0' },
    out: { type: 'string', default: 'runs/generation' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(
    'usage: node dist/main.js [--tokenizer-steps 10] [--gen-steps 20] [--batch-size 8] [--tokenizer-lr 2e-3] [--gen-lr 2e-3]\n' +
      "                         [--prompt 'a red circle on the left. text: K7.' ...] [--temperature 1] [--top-k 50] [--greedy] [--seed 0] [--out runs/generation]",
  );
  process.exit(0);
}
const num = (name: keyof typeof args, integer = true): number => {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v)))
    throw new Error(`--${name}: expected a non-negative number, got ${args[name]}`);
  return v;
};

const report = await initBackend();
console.log(`backend: ${report.backend} ${report.version} (${report.reason})`);

const seed = num('seed');
const imageSize = 32;
const text = new ByteTokenizer();
const tokenizer = new VQTokenizer({ ...VQ_TOKENIZER_TINY, seed });
const numVisual = (imageSize / tokenizer.downsample) ** 2;
// Like ettjs's buildModel, plus the visual head: K code logits next to the text logits.
const lm = new AutoregressiveLM(
  {
    architecture: 'qwen2',
    vocabSize: text.vocabSize,
    hiddenSize: 128,
    intermediateSize: 256,
    numLayers: 2,
    numHeads: 4,
    numKVHeads: 2,
    maxPositionEmbeddings: numVisual + 96,
    visualVocabSize: tokenizer.codebookSize,
  },
  { seed },
);
const adapter = createVisualAdapter({ kind: 'projector', inputDim: tokenizer.codeDim, outputDim: lm.hiddenSize });
// No discriminator, to keep the run short: the GAN term of L_vq is then off.
const model = new ETTModel({ tokenizer, adapter, lm, text, imageSize });
const data = new SyntheticTextImages({ imageSize, seed });

async function run(stage: Stage<ETTBatch>, stageSeed: number): Promise<void> {
  const t0 = Date.now();
  const trainer = new Trainer<ETTBatch>({
    model,
    data: syntheticSource(model, data, num('batch-size'), stageSeed),
    stages: [stage],
    seed: stageSeed,
    progress: 'lines',
    progressEvery: 20,
  });
  await trainer.fit();
  console.log(`  ${stage.name}: ${stage.steps} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

try {
  console.log(`stage 0: tokenizer pretraining, ${num('tokenizer-steps')} steps`);
  await run(tokenizerPretraining(model, { steps: num('tokenizer-steps'), lr: num('tokenizer-lr', false) }), seed);
  console.log(`stage 3 gen: visual-code prediction (adapter + LM, tokenizer frozen), ${num('gen-steps')} steps`);
  await run(postTrainingGen(model, { steps: num('gen-steps'), lr: num('gen-lr', false) }), seed + 3);

  const prompts = args.prompt && args.prompt.length > 0 ? args.prompt : DEFAULT_PROMPTS;
  const t0 = Date.now();
  const { images, codes } = await model.generateImages(prompts, {
    doSample: !args.greedy,
    temperature: num('temperature', false),
    topK: num('top-k'),
    seed,
  });
  console.log(`generated ${prompts.length} images (${numVisual} codes each) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const shown = tf.tidy(() => tf.clipByValue(images, -1, 1));
  const flat = (await shown.data()) as Float32Array;
  tf.dispose([images, shown]);
  const px = imageSize * imageSize * 3;
  const tiles = prompts.map((_, i) => flat.slice(i * px, (i + 1) * px));
  const grid = imageGrid(tiles, prompts.length, imageSize, imageSize);
  fs.mkdirSync(args.out!, { recursive: true });
  const file = path.resolve(args.out!, 'generated.png');
  fs.writeFileSync(file, encodePng(grid.image, grid.height, grid.width));
  fs.writeFileSync(
    path.resolve(args.out!, 'generated.json'),
    `${JSON.stringify(
      prompts.map((p, i) => ({ prompt: p, codes: codes[i] })),
      null,
      1,
    )}\n`,
  );
  for (const [i, p] of prompts.entries()) console.log(`  [${i}] ${p}  (${new Set(codes[i]).size} distinct codes)`);
  console.log(`wrote ${file} (left to right, one image per prompt) and generated.json (the sampled codes)`);
} finally {
  model.dispose();
}
console.log(`tensors left: ${tf.memory().numTensors}`);
