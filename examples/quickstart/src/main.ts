// `npm start`: trains a small tokenizer and LM on the embedded synthetic data through stages
// 0 -> 1 -> 2, compares the frozen tokenizer with ETT end-to-end tuning, post-trains each arm for
// generation (stage 3) and writes a report.
//   node dist/main.js [--out runs/quickstart] [--resume] [--scale 1] [--seed 0]
import path from 'node:path';
import { parseArgs } from 'node:util';
import { QUICKSTART_CONFIG, TrainingStoppedError, runExperiment, withInterruptStop } from 'ettjs';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: QUICKSTART_CONFIG.runDir },
    resume: { type: 'boolean', default: false },
    scale: { type: 'string', default: '1' },
    seed: { type: 'string', default: String(QUICKSTART_CONFIG.seed) },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    "usage: quickstart [--out DIR] [--resume] [--scale K] [--seed N]\n  --scale multiplies every stage's step count (e.g. 0.2 for a smoke run, 4 for a longer one)\n  --seed  run seed: initial weights, data order and the synthetic images (default 0)",
  );
  process.exit(0);
}
const scale = Number(values.scale);
if (!(scale > 0)) throw new Error(`--scale must be a positive number, got ${values.scale}`);
const seed = Number(values.seed);
if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`--seed must be a non-negative integer, got ${values.seed}`);
const steps = Object.fromEntries(
  Object.entries(QUICKSTART_CONFIG.steps).map(([k, v]) => [k, Math.max(1, Math.round(v * scale))]),
) as typeof QUICKSTART_CONFIG.steps;

const started = Date.now();
// Ctrl-C stops after the current step with a checkpoint; --resume continues from it.
const result = await withInterruptStop((signal) =>
  runExperiment({ runDir: values.out, steps, seed }, { resume: values.resume, signal }),
).catch((e: unknown) => {
  if (!(e instanceof TrainingStoppedError)) throw e;
  // The same arguments (--out, --scale) plus --resume continue the same run.
  const args = process.argv.slice(2).filter((a) => a !== '--resume');
  console.error(`\n${e.message}\ncontinue with: npm start -- ${[...args, '--resume'].join(' ')}`);
  process.exit(130);
});
console.log(`\nreport: ${path.resolve(result.reportPath)}  (${((Date.now() - started) / 60000).toFixed(1)} min on ${result.backend})`);
if ((steps.generation ?? 0) > 0) {
  console.log(`generate: npx ett generate --run ${path.resolve(values.out)} --out generated.png "a red circle on the left. text: K7."`);
}
