// Stage 3 gen: the LM learns to predict the tokenizer's code indices after a caption (its visual
// head over the codebook), then samples codes for new captions, which the tokenizer decodes. The
// generation judge (a small classifier trained on the synthetic set) then says whether each
// generated image shows the shape and colour its caption asks for, and the run writes a report.
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
import {
  type ETTBatch,
  ETTModel,
  evaluateGeneration,
  GenerationJudge,
  type JudgeScore,
  type MetricRecord,
  postTrainingGen,
  readMetricsLog,
  syntheticSource,
  tokenizerPretraining,
  trainJudge,
  writeReport,
} from 'ettjs';

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
    'eval-prompts': { type: 'string', default: '16' },
    judge: { type: 'string', default: 'runs/judge' },
    'judge-steps': { type: 'string', default: '500' },
    out: { type: 'string', default: 'runs/generation' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(
    'usage: node dist/main.js [--tokenizer-steps 10] [--gen-steps 20] [--batch-size 8] [--tokenizer-lr 2e-3] [--gen-lr 2e-3]\n' +
      "                         [--prompt 'a red circle on the left. text: K7.' ...] [--temperature 1] [--top-k 50] [--greedy] [--seed 0]\n" +
      '                         [--eval-prompts 16] [--judge runs/judge] [--judge-steps 500] [--out runs/generation]',
  );
  process.exit(0);
}
const num = (name: keyof typeof args, integer = true): number => {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v < 0 || (integer && !Number.isInteger(v)))
    throw new Error(`--${name}: expected a non-negative number, got ${args[name]}`);
  return v;
};

const report0 = await initBackend();
console.log(`backend: ${report0.backend} ${report0.version} (${report0.reason})`);

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

const out = path.resolve(args.out!);
fs.mkdirSync(out, { recursive: true });
const metrics: MetricRecord[] = [];

async function run(stage: Stage<ETTBatch>, stageSeed: number): Promise<void> {
  const t0 = Date.now();
  const metricsPath = path.join(out, `metrics-${stage.name}.jsonl`);
  fs.rmSync(metricsPath, { force: true });
  const trainer = new Trainer<ETTBatch>({
    model,
    data: syntheticSource(model, data, num('batch-size'), stageSeed),
    stages: [stage],
    seed: stageSeed,
    progress: 'lines',
    progressEvery: 20,
    metricsPath,
  });
  await trainer.fit();
  if (fs.existsSync(metricsPath))
    metrics.push(
      ...readMetricsLog(metricsPath)
        .filter((r) => r.type === 'step')
        .map((r) => ({ ...r, stage: stage.name })),
    );
  console.log(`  ${stage.name}: ${stage.steps} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** The judge saved in --judge, or a new one trained on the same synthetic data and saved there. */
async function loadOrTrainJudge(dir: string): Promise<GenerationJudge> {
  if (GenerationJudge.exists(dir)) {
    const judge = await GenerationJudge.load(dir);
    if (judge.config.imageSize === imageSize) return judge;
    judge.dispose();
    throw new Error(`--judge ${dir}: that judge reads ${judge.config.imageSize}-px images, this run makes ${imageSize}-px ones`);
  }
  console.log(`generation judge: training ${num('judge-steps')} steps on the synthetic set, saving to ${dir}`);
  const judge = await trainJudge({ data: { imageSize, seed }, steps: num('judge-steps') });
  await judge.save(dir);
  console.log(`  trained in ${(judge.training!.ms / 1000).toFixed(1)} s`);
  return judge;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const scoreLine = (s: JudgeScore) => `shape ${pct(s.shape)}, colour ${pct(s.colour)}, both ${pct(s.both)}`;

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
  const gridPng = encodePng(grid.image, grid.height, grid.width);
  const file = path.join(out, 'generated.png');
  fs.writeFileSync(file, gridPng);
  fs.writeFileSync(
    path.join(out, 'generated.json'),
    `${JSON.stringify(
      prompts.map((p, i) => ({ prompt: p, codes: codes[i] })),
      null,
      1,
    )}\n`,
  );
  for (const [i, p] of prompts.entries()) console.log(`  [${i}] ${p}  (${new Set(codes[i]).size} distinct codes)`);
  console.log(`wrote ${file} (left to right, one image per prompt) and generated.json (the sampled codes)`);

  // Judged evaluation: captions of held-out validation images as prompts.
  const judge = await loadOrTrainJudge(path.resolve(args.judge!));
  try {
    const samples = Array.from({ length: num('eval-prompts') }, (_, i) => data.sample('validation', i));
    const t1 = Date.now();
    const ev = await evaluateGeneration(model, judge, samples, {
      sampling: { doSample: !args.greedy, temperature: num('temperature', false), topK: num('top-k'), seed },
      keepImages: true,
    });
    console.log(`judged generation (${ev.samples} validation captions, ${((Date.now() - t1) / 1000).toFixed(1)} s):`);
    console.log(`  generated images:              ${scoreLine(ev.generated)}`);
    if (ev.reconstructed) console.log(`  reconstructions (the ceiling): ${scoreLine(ev.reconstructed)}`);
    if (ev.judgeHeldOut) console.log(`  the judge on real images:      ${scoreLine(ev.judgeHeldOut)}`);
    // Rows of 8: the real images, then what was generated from their captions, and so on.
    const cols = Math.min(8, samples.length);
    const tiles = Array.from({ length: Math.ceil(samples.length / cols) }, (_, r) => {
      const real = samples.slice(r * cols, (r + 1) * cols).map((s) => s.image);
      const gen = ev.images!.slice(r * cols, (r + 1) * cols);
      const blank = () => new Float32Array(px).fill(1);
      while (real.length < cols) real.push(blank());
      while (gen.length < cols) gen.push(blank());
      return [...real, ...gen];
    }).flat();
    const evalGrid = imageGrid(tiles, cols, imageSize, imageSize);
    const row = (name: string, s: JudgeScore | undefined) => (s ? [[name, s.samples, s.shape, s.colour, s.both]] : []);
    const report = writeReport(out, {
      title: 'ETT.js generation: stage 3 gen, judged',
      subtitle: `backend ${report0.backend}; seed ${seed}; tokenizer ${num('tokenizer-steps')} steps, gen ${num('gen-steps')} steps; judge ${path.resolve(args.judge!)}`,
      metrics,
      images: [
        { file: 'generated.png', title: 'Generated from the prompts', caption: prompts.join(' | '), png: gridPng },
        {
          file: 'generated-eval.png',
          title: 'Judged evaluation',
          caption: 'rows in pairs: the real validation images, then the images generated from their captions',
          png: encodePng(evalGrid.image, evalGrid.height, evalGrid.width),
        },
      ],
      tables: [
        {
          title: 'Generation judged shape/colour accuracy',
          columns: ['images', 'samples', 'shape', 'colour', 'both'],
          rows: [
            ...row('generated from validation captions', ev.generated),
            ...row('tokenizer reconstructions of those images (ceiling)', ev.reconstructed),
            ...row('real images (the judge itself, held out)', ev.judgeHeldOut),
          ],
          note: 'The judge is a small conv classifier trained on the synthetic training split (ettjs trainJudge); chance is 25 % for shape, 16.7 % for colour.',
        },
        {
          title: 'Judged examples',
          columns: ['prompt', 'judge saw', 'shape', 'colour'],
          rows: ev.examples.map((e) => [e.prompt, e.judged, e.shapeOk ? 'ok' : 'wrong', e.colourOk ? 'ok' : 'wrong']),
        },
      ],
    });
    console.log(`report: ${report}`);
  } finally {
    judge.dispose();
  }
} finally {
  model.dispose();
}
console.log(`tensors left: ${tf.memory().numTensors}`);
