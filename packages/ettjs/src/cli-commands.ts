import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { doctor, formatDoctorReport, initBackend } from '@ettjs/backend';
import { decodeImage, encodePng, imageGrid, parseCaption, resizeCenterCrop, SyntheticTextImages } from '@ettjs/data';
import * as tf from '@tensorflow/tfjs-core';
import { ETTModel } from './ett-model';
import { type EvalReport, evaluateModel } from './evaluate';
import { type ExperimentConfig, runExperiment } from './experiment';
import { withInterruptStop } from './interrupt';
import { GenerationJudge, trainJudge } from './judge';
import { ARMS, type Arm } from './recipes';
import { loadRun, RUN_STAGES, type RunStage } from './run-dir';

const WEIGHTS_HELP =
  '  --run DIR      a run directory (`ett train`); --stage and --arm pick its weights:\n' +
  '  --stage STAGE  understanding (after stage 2), generation (after stage 3), or the shared alignment (stage 1) / tokenizer (stage 0)\n' +
  '  --arm ARM      ett (default), frozen-embedding, caption-only, frozen-index: the arm of understanding / generation weights\n' +
  '  --model DIR    a saved model (`ett export`, ETTModel.savePretrained) instead of --run\n' +
  'A run that lacks the (stage, arm) asked for is an error that lists the ones it has.';

const HELP: Record<string, string> = {
  '': `ett — End-to-End Vision Tokenizer Tuning (ETT.js)

usage: ett <command> [options]

commands:
  doctor                       which backend runs, threads, SIMD, patched kernels, GPU detection
  train [--config f.json]      stage 0 -> 1 -> 2 -> 3 on the synthetic data (per arm); --resume continues
  eval --run DIR               per-field caption accuracy, PSNR and code usage on held-out images
  caption --run DIR IMG...     caption PNG/JPEG images
  reconstruct --run DIR IMG    tokenize and decode an image; writes a side-by-side PNG
  generate --run DIR "PROMPT"  sample an image from text (after stage 3: steps.generation > 0);
                               --judge DIR checks its shape and colour with the generation judge
  export --run DIR --stage S --out DIR
                               write a run's understanding or generation weights as a saved model
  report DIR                   print a run's results and where its HTML report is

eval, caption and reconstruct use a run's understanding (stage 2) weights, generate its generation
(stage 3) weights, of the ett arm unless --stage / --arm say otherwise; --model DIR reads a saved
model (ett export) instead of --run DIR. Run \`ett <command> --help\` for a command's options.`,
  doctor:
    'usage: ett doctor\n  Prints the backend report (ETT_BACKEND=tensorflow|webgpu|wasm|cpu overrides the choice; webgpu: not yet for ett train).',
  train:
    'usage: ett train [--config FILE] [--out DIR] [--resume]\n  --config  JSON with any ExperimentConfig keys (defaults: the quickstart)\n  --out     run directory (default: config runDir)\n  --resume  continue every phase from its latest checkpoint\n\nCtrl-C (SIGINT) or SIGTERM stops after the current step with a checkpoint; --resume continues from it.',
  eval: `usage: ett eval (--run DIR [--stage STAGE] [--arm ARM] | --model DIR) [--samples N]\n  Scores held-out synthetic images (with --model: those of the run it was exported from); default weights: understanding (stage 2).\n${WEIGHTS_HELP}`,
  caption: `usage: ett caption (--run DIR [--stage STAGE] [--arm ARM] | --model DIR) IMAGE...\n  Default weights: understanding (stage 2).\n${WEIGHTS_HELP}`,
  reconstruct: `usage: ett reconstruct (--run DIR [--stage STAGE] [--arm ARM] | --model DIR) IMAGE [--out FILE.png]\n  Default weights: understanding (stage 2).\n${WEIGHTS_HELP}`,
  generate:
    'usage: ett generate (--run DIR [--stage STAGE] [--arm ARM] | --model DIR) [--out FILE.png] [--seed N] [--judge DIR [--judge-steps N]] "PROMPT"...\n' +
    '  Default weights: generation (stage 3).\n' +
    "  --judge        judge each image's shape and colour against its prompt with the classifier saved in DIR\n" +
    "                 (trained on the run's synthetic data and saved there first when DIR has none)\n" +
    '  --judge-steps  training steps of a new judge (default 500)\n' +
    WEIGHTS_HELP,
  export:
    'usage: ett export --run DIR --stage understanding|generation [--arm ARM] --out DIR\n' +
    "  Writes the run's weights of that stage and arm (default ett) as a saved model (ETTModel.savePretrained):\n" +
    '  config.json, vision_tokenizer/, adapter/, and lm/ (HF config.json + model.safetensors + text tokenizer).\n' +
    '  The GAN discriminator is not exported. Use it with --model DIR, or ETTModel.fromPretrained(DIR).\n' +
    '  --stage alignment|tokenizer exports the shared stage 1 / stage 0 weights (no --arm).',
  report: 'usage: ett report DIR',
};

/** A mistake in the command line: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

type Options = Record<string, { type: 'string' | 'boolean' }>;

function parse(args: string[], options: Options): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: 'boolean' } }, allowPositionals: true });
    return { values: r.values as Record<string, string | boolean | undefined>, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function armOf(v: unknown): Arm | undefined {
  if (v === undefined) return undefined;
  if (!ARMS.includes(v as Arm)) throw new UsageError(`--arm must be one of ${ARMS.join(', ')}, got ${String(v)}`);
  return v as Arm;
}

function stageOf(v: unknown, fallback: RunStage): RunStage {
  if (v === undefined) return fallback;
  if (!RUN_STAGES.includes(v as RunStage)) throw new UsageError(`--stage must be one of ${RUN_STAGES.join(', ')}, got ${String(v)}`);
  return v as RunStage;
}

/** The model a command works on, with the synthetic data it was trained on (for eval and the judge). */
interface CommandModel {
  model: ETTModel;
  data: ExperimentConfig['data'] & { seed: number };
  /** Which weights, for the user: the checkpoint or saved model, stage and arm. */
  label: string;
  stage?: RunStage;
}

/**
 * `--run DIR [--stage S] [--arm A]` or `--model DIR`: loads exactly the weights asked for (a run
 * defaults to `stage` of the ett arm) and errors, listing what there is, when they are not there.
 */
async function loadCommandModel(values: Record<string, string | boolean | undefined>, stage: RunStage): Promise<CommandModel> {
  if (values.model !== undefined) {
    if (values.run !== undefined) throw new UsageError('give either --run DIR or --model DIR, not both');
    if (values.stage !== undefined || values.arm !== undefined)
      throw new UsageError('--stage and --arm pick weights inside a run (--run DIR); a --model DIR holds one set of weights');
    const dir = need(values.model, '--model DIR');
    const source = (await ETTModel.readPretrainedConfig(dir)).source ?? {};
    const model = await ETTModel.fromPretrained(dir);
    const from = typeof source.stage === 'string' ? ` (${source.stage}${typeof source.arm === 'string' ? `, arm ${source.arm}` : ''})` : '';
    const data = (source.data ?? { imageSize: model.imageSize }) as ExperimentConfig['data'];
    return {
      model,
      data: { ...data, seed: typeof source.seed === 'number' ? source.seed : 0 },
      label: `${dir}${from}`,
      stage: RUN_STAGES.includes(source.stage as RunStage) ? (source.stage as RunStage) : undefined,
    };
  }
  const run = need(values.run, '--run DIR (or --model DIR)');
  const chosen = stageOf(values.stage, stage);
  const arm = armOf(values.arm);
  const r = await loadRun(run, { stage: chosen, arm });
  return {
    model: r.model,
    data: { ...r.config.data, seed: r.config.seed },
    label: `${r.checkpoint} (${r.stage}${r.arm ? `, arm ${r.arm}` : ''})`,
    stage: r.stage,
  };
}

const WEIGHT_OPTIONS = {
  run: { type: 'string' },
  model: { type: 'string' },
  stage: { type: 'string' },
  arm: { type: 'string' },
} as const;

function need(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new UsageError(`missing ${what}`);
  return v;
}

function readImage(file: string, size: number): Float32Array {
  if (!fs.existsSync(file)) throw new UsageError(`no such image: ${file}`);
  return resizeCenterCrop(decodeImage(new Uint8Array(fs.readFileSync(file)), file), size);
}

function printEval(label: string, e: EvalReport): void {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(
    `${label}: samples ${e.samples}  shape ${pct(e.shape)}  colour ${pct(e.colour)}  position ${pct(e.position)}  text exact ${pct(e.textExact)}  text chars ${pct(e.textChar)}  PSNR ${e.psnr.toFixed(2)} dB  usage ${pct(e.usage)}`,
  );
}

/**
 * `ett generate --judge DIR`: loads the judge in DIR (or trains one on the run's synthetic data and
 * saves it there), then prints what it sees in each image and whether that matches the prompt.
 */
async function judgeGenerated(
  images: tf.Tensor4D,
  prompts: string[],
  dir: string,
  data: ExperimentConfig['data'],
  steps: number,
): Promise<void> {
  let judge: GenerationJudge;
  if (GenerationJudge.exists(dir)) {
    judge = await GenerationJudge.load(dir);
  } else {
    console.log(`training the generation judge (${steps} steps) into ${dir}`);
    judge = await trainJudge({ data, steps });
    await judge.save(dir);
  }
  try {
    if (judge.config.imageSize !== images.shape[1]) {
      throw new UsageError(
        `the judge in ${dir} reads ${judge.config.imageSize}-px images but this run makes ${images.shape[1]}-px ones; use another --judge DIR`,
      );
    }
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    const held = judge.training?.heldOut;
    if (held) console.log(`judge: held-out accuracy on real images shape ${pct(held.shape)}, colour ${pct(held.colour)}`);
    const clipped = tf.tidy(() => tf.clipByValue(images, -1, 1));
    const readings = await judge.classify(clipped);
    clipped.dispose();
    const mark = (ok: boolean | null) => (ok === null ? '-' : ok ? 'ok' : 'WRONG');
    let checked = 0;
    let both = 0;
    for (const [i, p] of prompts.entries()) {
      const r = readings[i];
      const want = parseCaption(p);
      const shapeOk = want.shape ? r.shape === want.shape : null;
      const colourOk = want.colour ? r.colour === want.colour : null;
      if (shapeOk !== null && colourOk !== null) {
        checked++;
        both += shapeOk && colourOk ? 1 : 0;
      }
      console.log(`[${i}] judged: ${r.colour} ${r.shape}  (shape ${mark(shapeOk)}, colour ${mark(colourOk)})  prompt: ${p}`);
    }
    if (checked > 0) console.log(`judged shape and colour both right: ${both}/${checked}`);
  } finally {
    judge.dispose();
  }
}

/** Runs one `ett` command; throws `UsageError` for command-line mistakes. */
export async function runCli(argv: string[]): Promise<void> {
  const [command = '', ...rest] = argv;
  if (command === '' || command === '--help' || command === 'help') {
    console.log(HELP['']);
    return;
  }
  if (!(command in HELP)) throw new UsageError(`unknown command "${command}"\n\n${HELP['']}`);
  const wantsHelp = rest.includes('--help') || rest.includes('-h');
  if (wantsHelp) {
    console.log(HELP[command]);
    return;
  }
  switch (command) {
    case 'doctor': {
      console.log(formatDoctorReport(await doctor()));
      return;
    }
    case 'train': {
      const { values } = parse(rest, { config: { type: 'string' }, out: { type: 'string' }, resume: { type: 'boolean' } });
      let config: Partial<ExperimentConfig> = {};
      if (values.config) {
        const file = String(values.config);
        if (!fs.existsSync(file)) throw new UsageError(`no such config file: ${file}`);
        try {
          config = JSON.parse(fs.readFileSync(file, 'utf8'));
        } catch (e) {
          throw new UsageError(`${file} is not valid JSON: ${(e as Error).message}`);
        }
      }
      if (values.out) config.runDir = String(values.out);
      // runExperiment prints the learning curve while it trains and the results with chance at the end.
      const r = await withInterruptStop((signal) => runExperiment(config, { resume: Boolean(values.resume), signal }));
      console.log(`report: ${r.reportPath}`);
      return;
    }
    case 'eval': {
      const { values } = parse(rest, { ...WEIGHT_OPTIONS, samples: { type: 'string' } });
      const samples = Number(values.samples ?? 64);
      if (!Number.isInteger(samples) || samples < 1) throw new UsageError(`--samples must be a positive integer, got ${values.samples}`);
      await initBackend();
      const { model, data: dataConfig, label } = await loadCommandModel(values, 'understanding');
      try {
        const data = new SyntheticTextImages(dataConfig);
        console.log(`weights: ${label}`);
        printEval(
          'test',
          await evaluateModel(
            model,
            Array.from({ length: samples }, (_, i) => data.sample('test', i)),
          ),
        );
      } finally {
        model.dispose();
      }
      return;
    }
    case 'caption':
    case 'reconstruct':
    case 'generate': {
      const { values, positionals } = parse(rest, {
        ...WEIGHT_OPTIONS,
        out: { type: 'string' },
        seed: { type: 'string' },
        ...(command === 'generate' ? { judge: { type: 'string' as const }, 'judge-steps': { type: 'string' as const } } : {}),
      });
      if (positionals.length === 0) throw new UsageError(`missing ${command === 'generate' ? 'PROMPT' : 'IMAGE'}\n${HELP[command]}`);
      const judgeSteps = Number(values['judge-steps'] ?? 500);
      if (!Number.isInteger(judgeSteps) || judgeSteps < 1)
        throw new UsageError(`--judge-steps must be a positive integer, got ${values['judge-steps']}`);
      if (values['judge-steps'] !== undefined && values.judge === undefined) throw new UsageError('--judge-steps needs --judge DIR');
      await initBackend();
      const { model, data, label, stage } = await loadCommandModel(values, command === 'generate' ? 'generation' : 'understanding');
      try {
        console.error(`weights: ${label}`);
        if (command === 'generate' && stage !== undefined && stage !== 'generation')
          console.error(`note: these are ${stage} weights; the visual head learns to generate in stage 3 (--stage generation)`);
        if (command !== 'generate' && stage === 'generation')
          console.error(
            'note: these are generation (stage 3) weights; stage 3 trains the LM on codes, and it captions worse than after stage 2',
          );
        const S = model.imageSize;
        if (command === 'generate') {
          const { images } = await model.generateImages(positionals, { seed: Number(values.seed ?? 0) });
          if (typeof values.judge === 'string') {
            try {
              await judgeGenerated(images, positionals, values.judge, data, judgeSteps);
            } catch (e) {
              images.dispose();
              throw e;
            }
          }
          const flat = (await images.data()) as Float32Array;
          images.dispose();
          const per = S * S * 3;
          const grid = imageGrid(
            positionals.map((_, i) => flat.slice(i * per, (i + 1) * per)),
            positionals.length,
            S,
            S,
          );
          const out = String(values.out ?? 'generated.png');
          fs.writeFileSync(out, encodePng(grid.image, grid.height, grid.width));
          console.log(`wrote ${out}`);
          return;
        }
        const pixels = positionals.map((f) => readImage(f, S));
        const images = tf.tensor4d(Float32Array.from(pixels.flatMap((p) => Array.from(p))), [pixels.length, S, S, 3]);
        try {
          if (command === 'caption') {
            const captions = await model.caption(images);
            for (const [i, f] of positionals.entries()) console.log(`${f}: ${captions[i]}`);
            return;
          }
          const rec = tf.tidy(() => tf.clipByValue(model.tokenizer.decode(model.tokenizer.encode(images).quantized), -1, 1));
          const r = (await rec.data()) as Float32Array;
          rec.dispose();
          const grid = imageGrid([pixels[0], r.slice(0, S * S * 3)], 2, S, S);
          const out = String(values.out ?? `${path.basename(positionals[0]).replace(/\.[^.]+$/, '')}-reconstruction.png`);
          fs.writeFileSync(out, encodePng(grid.image, grid.height, grid.width));
          console.log(`wrote ${out} (left: input, right: reconstruction)`);
        } finally {
          images.dispose();
        }
      } finally {
        model.dispose();
      }
      return;
    }
    case 'export': {
      const { values, positionals } = parse(rest, {
        run: { type: 'string' },
        stage: { type: 'string' },
        arm: { type: 'string' },
        out: { type: 'string' },
      });
      if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}\n${HELP.export}`);
      const run = need(values.run, '--run DIR');
      const stage = stageOf(need(values.stage, '--stage understanding|generation'), 'understanding');
      const out = need(values.out, '--out DIR');
      const arm = armOf(values.arm);
      await initBackend();
      const r = await loadRun(run, { stage, arm });
      try {
        await r.model.savePretrained(out, {
          source: {
            run: path.resolve(run),
            stage: r.stage,
            ...(r.arm ? { arm: r.arm } : {}),
            checkpoint: path.resolve(r.checkpoint),
            data: r.config.data,
            seed: r.config.seed,
          },
        });
      } finally {
        r.model.dispose();
      }
      console.log(`wrote ${out}: ${r.stage}${r.arm ? ` weights of the ${r.arm} arm` : ' weights'} from ${r.checkpoint}`);
      return;
    }
    case 'report': {
      const { positionals } = parse(rest, {});
      const dir = need(positionals[0], 'DIR');
      const results = path.join(dir, 'results.json');
      if (!fs.existsSync(results)) throw new UsageError(`${dir} has no results.json yet: run \`ett train --out ${dir}\` to the end first`);
      const r = JSON.parse(fs.readFileSync(results, 'utf8')) as {
        beforeSemantic: EvalReport;
        arms: { arm: string; eval: EvalReport }[];
        reportPath: string;
      };
      printEval('after stage 1', r.beforeSemantic);
      for (const a of r.arms) printEval(a.arm, a.eval);
      console.log(`report: ${path.join(dir, 'report.html')}`);
      return;
    }
  }
}
