// Runs ETT on an HF-format LLaMA / Qwen2 checkpoint directory and writes the tuned LM back in HF
// format, so the run can continue in PyTorch (`AutoModelForCausalLM.from_pretrained(out)`).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AutoregressiveLM, ByteTokenizer, HFTokenizer } from '@ettjs/autoregressive-lm';
import { initBackend } from '@ettjs/backend';
import type { TextTokenizer } from '@ettjs/core';
import { SyntheticTextImages } from '@ettjs/data';
import { createVisualAdapter } from '@ettjs/projector';
import { type Stage, Trainer } from '@ettjs/trainer';
import { VQ_TOKENIZER_TINY, VQTokenizer } from '@ettjs/vector-quantizer';
import * as tf from '@tensorflow/tfjs-core';
import { alignment, type ETTBatch, ETTModel, evaluateModel, semantic, syntheticSource, tokenizerPretraining } from 'ettjs';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    out: { type: 'string', default: 'runs/hf-checkpoint' },
    'tokenizer-steps': { type: 'string', default: '20' },
    'alignment-steps': { type: 'string', default: '20' },
    'semantic-steps': { type: 'string', default: '20' },
    'batch-size': { type: 'string', default: '4' },
    'eval-samples': { type: 'string', default: '8' },
    lr: { type: 'string', default: '1e-3' },
    seed: { type: 'string', default: '0' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(
    'usage: node dist/main.js [--model <hf-dir>] [--out runs/hf-checkpoint] [--tokenizer-steps 20] [--alignment-steps 20]\n' +
      '                         [--semantic-steps 20] [--batch-size 4] [--eval-samples 8] [--lr 1e-3] [--seed 0]',
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
const tokenizer = new VQTokenizer({ ...VQ_TOKENIZER_TINY, seed });
const numVisual = (imageSize / tokenizer.downsample) ** 2;
// [BOS] <boi> N codes <eoi> caption [EOS]: the synthetic captions need < 64 tokens.
const needPositions = numVisual + 3 + 64;

let dir = args.model;
if (!dir) {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-tiny-llama-'));
  const tiny = new AutoregressiveLM(
    {
      architecture: 'llama',
      vocabSize: new ByteTokenizer().vocabSize,
      hiddenSize: 64,
      intermediateSize: 176,
      numLayers: 2,
      numHeads: 4,
      numKVHeads: 2,
      maxPositionEmbeddings: 256,
      ropeTheta: 1e4,
      rmsNormEps: 1e-5,
      qkvBias: false,
      tieWordEmbeddings: false,
    },
    { seed },
  );
  await tiny.savePretrained(dir);
  tiny.dispose();
  console.log(`no --model given: wrote a tiny RANDOM LLaMA checkpoint to ${dir} (config.json + model.safetensors) and use that`);
}

const hfConfig = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { max_position_embeddings?: number };
const shortContext = (hfConfig.max_position_embeddings ?? Number.POSITIVE_INFINITY) < needPositions;
if (shortContext) {
  console.log(
    `the checkpoint's context (${hfConfig.max_position_embeddings}) is shorter than the ${needPositions} positions an image + caption needs; ` +
      'raising maxPositionEmbeddings (RoPE has no learnt positions, so this only lifts the check)',
  );
}
let lm = await AutoregressiveLM.fromPretrained(dir, shortContext ? { config: { maxPositionEmbeddings: needPositions } } : {});
console.log(
  `loaded ${lm.config.architecture} from ${dir}: ${lm.config.numLayers} layers, hidden ${lm.hiddenSize}, vocab ${lm.vocabSize}, ${lm.parameterCount()} parameters`,
);

// Text tokenizer: the checkpoint's own tokenizer.json when it has one, else the byte tokenizer
// (only if the LM has at least its 261 ids; a random checkpoint built for it has exactly that).
let text: TextTokenizer;
let hfText: HFTokenizer | undefined;
if (fs.existsSync(path.join(dir, 'tokenizer.json'))) {
  const hf = await HFTokenizer.fromDirectory(dir);
  const have = hf.specialTokens;
  // ETT needs <boi>/<eoi>, and a bos/eos/pad (LLaMA has no pad, Qwen2 no bos): add what is missing.
  const missing = ['boi', 'eoi', 'bos', 'eos', 'pad'].filter((n) => !Number.isInteger(have[n]));
  const ids = hf.addSpecialTokens(missing.map((n) => `<${n}>`));
  console.log(
    `text: ${dir}/tokenizer.json (vocab ${hf.vocabSize}); added special tokens ${missing.map((n, i) => `<${n}>=${ids[i]}`).join(' ')}`,
  );
  // An LM's vocabulary is often padded past its tokenizer's (Qwen2: 151936 rows, 151665 tokens), and an
  // untrained model can pick a padded id; ETTModel.caption does not restrict sampling to the text
  // vocabulary, so decode drops ids the tokenizer does not have instead of throwing.
  text = {
    get vocabSize() {
      return hf.vocabSize;
    },
    get specialTokens() {
      return hf.specialTokens;
    },
    encode: (s: string) => hf.encode(s),
    decode: (ids: readonly number[]) => hf.decode(ids.filter((id) => id < hf.vocabSize)),
  };
  hfText = hf;
} else if (lm.vocabSize >= new ByteTokenizer().vocabSize) {
  text = new ByteTokenizer();
  console.log(`text: no tokenizer.json in ${dir}; using the byte tokenizer (${text.vocabSize} ids)`);
} else {
  throw new Error(
    `${dir} has no tokenizer.json and its vocabulary (${lm.vocabSize}) is smaller than the byte tokenizer's (261); put the model's tokenizer.json next to it`,
  );
}
if (text.vocabSize > lm.vocabSize) {
  const grown = lm.resizeTokenEmbeddings(text.vocabSize);
  console.log(`resized the LM's token embeddings ${lm.vocabSize} → ${grown.vocabSize} (new rows = mean of the old ones)`);
  lm.dispose();
  lm = grown;
}

const adapter = createVisualAdapter({ kind: 'projector', inputDim: tokenizer.codeDim, outputDim: lm.hiddenSize });
const model = new ETTModel({ tokenizer, adapter, lm, text, imageSize });
const data = new SyntheticTextImages({ imageSize, seed });
const evalSet = Array.from({ length: num('eval-samples') }, (_, i) => data.sample('validation', i));
const lr = num('lr', false);

async function run(stage: Stage<ETTBatch>, stageSeed: number): Promise<void> {
  const t0 = Date.now();
  const trainer = new Trainer<ETTBatch>({
    model,
    data: syntheticSource(model, data, num('batch-size'), stageSeed),
    stages: [stage],
    seed: stageSeed,
    progress: 'lines',
    progressEvery: 10,
  });
  await trainer.fit();
  console.log(`  ${stage.name}: ${stage.steps} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

try {
  console.log(`stage 0: tokenizer pretraining, ${num('tokenizer-steps')} steps`);
  await run(tokenizerPretraining(model, { steps: num('tokenizer-steps'), lr: 2e-3 }), seed);
  console.log(`stage 1: alignment (projector only), ${num('alignment-steps')} steps`);
  await run(alignment(model, { steps: num('alignment-steps'), lr }), seed + 1);
  console.log(`stage 2: ETT (tokenizer + projector + LM, α = 0.25), ${num('semantic-steps')} steps`);
  await run(semantic(model, { steps: num('semantic-steps'), lr, arm: 'ett', alpha: 0.25 }), seed + 2);
  const e = await evaluateModel(model, evalSet);
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  console.log(
    `eval: shape ${pct(e.shape)}, colour ${pct(e.colour)}, position ${pct(e.position)}, text exact ${pct(e.textExact)}, ` +
      `PSNR ${e.psnr.toFixed(2)} dB, code usage ${pct(e.usage)}; e.g. ${JSON.stringify(e.examples[0]?.generated)}`,
  );

  const out = path.resolve(args.out!);
  await lm.savePretrained(path.join(out, 'lm'));
  await tokenizer.savePretrained(path.join(out, 'vision-tokenizer'));
  if ('savePretrained' in adapter) await adapter.savePretrained(path.join(out, 'projector'));
  if (hfText) console.log('note: the added special tokens live only in memory; add them again in PyTorch before loading');
  console.log(`wrote the tuned LM in HF format to ${path.join(out, 'lm')} (config.json + model.safetensors)`);
  console.log(`  PyTorch: AutoModelForCausalLM.from_pretrained('${path.join(out, 'lm')}')`);
  console.log(`  vision tokenizer: ${path.join(out, 'vision-tokenizer')}, projector: ${path.join(out, 'projector')} (ETT.js format)`);
} finally {
  model.dispose();
}
console.log(`tensors left: ${tf.memory().numTensors}`);
