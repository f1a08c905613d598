// The paper's Table 4 (frozen-index vs frozen-embedding vs ETT) and Table 5 (caption-only, α sweep)
// at toy scale: every arm gets the same steps, from the same stage-0 tokenizer per seed.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend } from '@ettjs/backend';
import type { Module } from '@ettjs/core';
import { SyntheticTextImages } from '@ettjs/data';
import { type Stage, Trainer } from '@ettjs/trainer';
import * as tf from '@tensorflow/tfjs-core';
import {
  alignment,
  type Arm,
  buildModel,
  type EvalReport,
  type EvalSample,
  type ETTBatch,
  type ETTModel,
  type ExperimentConfig,
  evaluateModel,
  resolveExperimentConfig,
  semantic,
  syntheticSource,
  textPretraining,
  tokenizerPretraining,
} from 'ettjs';

const { values: args } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1' },
    steps: { type: 'string', default: '5' },
    'tokenizer-steps': { type: 'string' },
    'alignment-steps': { type: 'string' },
    'text-steps': { type: 'string', default: '150' },
    'eval-samples': { type: 'string', default: '8' },
    'batch-size': { type: 'string', default: '8' },
    gan: { type: 'string', default: 'on' },
    out: { type: 'string', default: 'runs/frozen-vs-ett/results.md' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(
    'usage: node dist/main.js [--seeds 1] [--steps 5] [--text-steps 150] [--tokenizer-steps <steps>] [--alignment-steps <steps>] [--eval-samples 8]\n' +
      '                         [--batch-size 8] [--gan on|off] [--out runs/frozen-vs-ett/results.md]\n' +
      '  --steps is the stage-2 steps of every arm, and the default of the other two stages',
  );
  process.exit(0);
}
const int = (v: string | undefined, name: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive integer, got ${v}`);
  return n;
};
if (args.gan !== 'on' && args.gan !== 'off') throw new Error(`--gan: expected on or off, got ${args.gan}`);
const seeds = int(args.seeds, 'seeds');
const steps = int(args.steps, 'steps');
const tokenizerSteps = int(args['tokenizer-steps'] ?? args.steps, 'tokenizer-steps');
const alignmentSteps = int(args['alignment-steps'] ?? args.steps, 'alignment-steps');
const evalSamples = int(args['eval-samples'], 'eval-samples');
const textSteps = int(args['text-steps'], 'text-steps');

/** One row of the comparison: a stage-2 arm and its α. */
interface Row {
  name: string;
  arm: Arm;
  alpha: number;
}
const ROWS: Row[] = [
  { name: 'frozen-index', arm: 'frozen-index', alpha: 0 },
  { name: 'frozen-embedding', arm: 'frozen-embedding', alpha: 0 },
  { name: 'ett (α 0.25)', arm: 'ett', alpha: 0.25 },
  { name: 'caption-only (α 0)', arm: 'caption-only', alpha: 0 },
  { name: 'ett (α 0.5)', arm: 'ett', alpha: 0.5 },
  { name: 'ett (α 1.0)', arm: 'ett', alpha: 1.0 },
];

const report = await initBackend();
console.log(`backend: ${report.backend} ${report.version} (${report.reason})`);

function snapshot(m: Module, keep: (name: string) => boolean = () => true): Record<string, tf.Tensor> {
  return Object.fromEntries(
    Object.entries(m.stateDict())
      .filter(([k]) => keep(k))
      .map(([k, v]) => [k, tf.keep(tf.clone(v))]),
  );
}

async function train(model: ETTModel, c: ExperimentConfig, data: SyntheticTextImages, stage: Stage<ETTBatch>, seed: number): Promise<void> {
  const t0 = Date.now();
  const trainer = new Trainer<ETTBatch>({
    model,
    data: syntheticSource(model, data, c.batchSize, seed),
    stages: [stage],
    seed,
    progress: 'none',
  });
  await trainer.fit();
  console.log(`    ${stage.name}: ${stage.steps} steps, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

const results = new Map<string, EvalReport[]>();
const record = (name: string, e: EvalReport) => {
  results.set(name, [...(results.get(name) ?? []), e]);
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  console.log(
    `    → ${name}: shape ${pct(e.shape)} colour ${pct(e.colour)} position ${pct(e.position)} text ${pct(e.textExact)}/${pct(e.textChar)} ` +
      `PSNR ${e.psnr.toFixed(2)} usage ${pct(e.usage)}`,
  );
};
const t0 = Date.now();

for (let seed = 0; seed < seeds; seed++) {
  const c = resolveExperimentConfig({
    seed,
    batchSize: int(args['batch-size'], 'batch-size'),
    gan: args.gan === 'on' ? resolveExperimentConfig().gan : false,
    steps: { text: textSteps, tokenizer: tokenizerSteps, alignment: alignmentSteps, semantic: steps, generation: 0 },
    evalSamples,
    progress: 'none',
  });
  const data = new SyntheticTextImages({ ...c.data, seed });
  const evalSet: EvalSample[] = Array.from({ length: evalSamples }, (_, i) => data.sample('validation', i));
  console.log(`seed ${seed}: stage 0 (tokenizer), shared by every arm`);
  const base = buildModel(c, 'frozen-embedding');
  let stage0: Record<string, tf.Tensor> = {};
  let stage1: Record<string, tf.Tensor> = {};
  try {
    // The LM learns the caption text first (the paper starts from a pretrained LM).
    await train(base, c, data, textPretraining(base, { steps: c.steps.text, lr: c.lr.text }), seed + 3);
    await train(base, c, data, tokenizerPretraining(base, { steps: c.steps.tokenizer, lr: c.lr.tokenizer }), seed);
    // The stage-0 tokenizer (and the critic that trained it) and the text-pretrained LM: every arm starts from these weights.
    stage0 = snapshot(base, (k) => k.startsWith('tokenizer.') || k.startsWith('discriminator.') || k.startsWith('lm.'));
    console.log(`seed ${seed}: stage 1 (projector alignment), shared by the codebook-embedding arms`);
    await train(base, c, data, alignment(base, { steps: c.steps.alignment, lr: c.lr.alignment }), seed + 1);
    record('after stage 1 (frozen tokenizer)', await evaluateModel(base, evalSet));
    stage1 = snapshot(base);
    for (const row of ROWS) {
      console.log(`seed ${seed}: ${row.name}`);
      if (row.arm === 'frozen-index') {
        // A fresh index-embedding table over the code indices needs its own stage 1.
        const m = buildModel(c, 'frozen-index');
        try {
          const { unexpected } = m.loadStateDict(stage0, { strict: false });
          if (unexpected.length > 0) throw new Error(`frozen-index model has no ${unexpected.join(', ')}`);
          await train(m, c, data, alignment(m, { steps: c.steps.alignment, lr: c.lr.alignment }), seed + 1);
          await train(m, c, data, semantic(m, { steps: c.steps.semantic, lr: c.lr.semantic, arm: 'frozen-index' }), seed + 2);
          record(row.name, await evaluateModel(m, evalSet));
        } finally {
          m.dispose();
        }
        continue;
      }
      base.loadStateDict(stage1);
      await train(base, c, data, semantic(base, { steps: c.steps.semantic, lr: c.lr.semantic, arm: row.arm, alpha: row.alpha }), seed + 2);
      record(row.name, await evaluateModel(base, evalSet));
    }
  } finally {
    tf.dispose([...Object.values(stage0), ...Object.values(stage1)]);
    base.dispose();
  }
}

// Mean ± sample standard deviation over seeds ("—" with one seed).
const COLUMNS: [string, (e: EvalReport) => number, number, string][] = [
  ['shape', (e) => e.shape, 100, '%'],
  ['colour', (e) => e.colour, 100, '%'],
  ['position', (e) => e.position, 100, '%'],
  ['text exact', (e) => e.textExact, 100, '%'],
  ['text char', (e) => e.textChar, 100, '%'],
  ['PSNR', (e) => e.psnr, 1, ' dB'],
  ['usage', (e) => e.usage, 100, '%'],
];
function cell(evals: EvalReport[], get: (e: EvalReport) => number, scale: number, unit: string): string {
  const xs = evals.map((e) => get(e) * scale);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : Number.NaN;
  const digits = unit === ' dB' ? 2 : 1;
  return `${mean.toFixed(digits)}${Number.isNaN(sd) ? '' : ` ± ${sd.toFixed(digits)}`}${unit}`;
}
const header = ['arm', ...COLUMNS.map((c) => c[0])];
const lines = [...results.entries()].map(([name, evals]) => [name, ...COLUMNS.map(([, get, s, u]) => cell(evals, get, s, u))]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
const fmt = (r: string[]) => `| ${r.map((x, i) => x.padEnd(widths[i])).join(' | ')} |`;
const table = [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
const minutes = ((Date.now() - t0) / 60000).toFixed(1);
const md = [
  '# Frozen tokenizer vs ETT (toy scale)',
  '',
  `Backend ${report.backend}; ${seeds} seed(s) (mean ± sample std over seeds); steps: tokenizer ${tokenizerSteps}, ` +
    `alignment ${alignmentSteps}, stage 2 ${steps} per arm; ${evalSamples} validation samples; GAN ${args.gan}; ${minutes} min.`,
  '',
  table,
  '',
  'Rows follow the paper: Table 4 (frozen-index, frozen-embedding, ETT) and Table 5 (caption-only = α 0, α sweep).',
  'Every arm starts from the same stage-0 tokenizer of its seed; frozen-index runs its own stage 1 (index embedding).',
  '',
].join('\n');
console.log(`\n${table}\n`);
const out = path.resolve(args.out!);
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, md);
console.log(`wrote ${out} (${minutes} min); tensors left: ${tf.memory().numTensors}`);
