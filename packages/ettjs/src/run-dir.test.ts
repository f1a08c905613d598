import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadSafetensorsFile, safetensorsToTensors } from '@ettjs/core';
import { encodePng, SyntheticTextImages } from '@ettjs/data';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFreshRunDir } from '../test/run-dir-fixture';
import { runCli, UsageError } from './cli-commands';
import { ETTModel } from './ett-model';
import { type ExperimentConfig, QUICKSTART_CONFIG, resolveExperimentConfig } from './experiment';
import { listRunWeights, loadRun, RunDirError } from './run-dir';

const tinyConfig = (runDir: string, generation = 2): ExperimentConfig =>
  resolveExperimentConfig({
    runDir,
    arms: ['frozen-embedding', 'ett'],
    data: { imageSize: 16, glyphScale: 1 },
    tokenizer: { ...QUICKSTART_CONFIG.tokenizer, ch: 8, chMult: [1, 2, 2], zChannels: 8, codeDim: 8, codebookSize: 32, normGroups: 4 },
    lm: {
      ...QUICKSTART_CONFIG.lm,
      hiddenSize: 16,
      intermediateSize: 32,
      numLayers: 1,
      numHeads: 2,
      numKVHeads: 1,
      maxPositionEmbeddings: 96,
    },
    gan: { baseChannels: 8, layers: 1 },
    steps: { ...QUICKSTART_CONFIG.steps, generation },
    evalSamples: 2,
  });

// Every phase of a two-arm run with generation, each with its own fresh weights (no training).
const PHASES = ['stage0-tokenizer', 'stage1-alignment', 'stage2-frozen-embedding', 'stage2-ett', 'stage3-gen-ett'];

/** The value of one tensor the checkpoint of `phase` holds, to tell which weights a model has. */
async function fingerprint(dir: string, phase: string, name = 'lm.model.embed_tokens.weight'): Promise<number[]> {
  const t = safetensorsToTensors(await loadSafetensorsFile(path.join(dir, phase, 'step-00000001', 'model.safetensors')));
  const v = Array.from(t[name].dataSync().slice(0, 8));
  tf.dispose(Object.values(t));
  return v;
}
const modelFingerprint = (m: ETTModel, name = 'lm.model.embed_tokens.weight') => Array.from(m.stateDict()[name].dataSync().slice(0, 8));

/** Captures console output of a CLI call. */
async function cli(args: string[]): Promise<{ out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  console.error = (...a: unknown[]) => err.push(a.join(' '));
  try {
    await runCli(args);
  } finally {
    console.log = log;
    console.error = error;
  }
  return { out, err };
}

describe('loadRun', () => {
  let dir: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-run-'));
    await writeFreshRunDir(dir, tinyConfig(dir), PHASES);
  });

  it('loads exactly the (stage, arm) asked for: understanding of ett by default, never the newest', async () => {
    const cases = [
      [{}, 'stage2-ett'],
      [{ stage: 'generation' }, 'stage3-gen-ett'],
      [{ stage: 'understanding', arm: 'frozen-embedding' }, 'stage2-frozen-embedding'],
      [{ stage: 'alignment' }, 'stage1-alignment'],
      [{ stage: 'tokenizer' }, 'stage0-tokenizer'],
    ] as const;
    for (const [options, phase] of cases) {
      const r = await loadRun(dir, options);
      try {
        expect(r.checkpoint, JSON.stringify(options)).toBe(path.join(dir, phase, 'step-00000001'));
        expect(modelFingerprint(r.model), phase).toEqual(await fingerprint(dir, phase));
      } finally {
        r.model.dispose();
      }
    }
    const defaults = await loadRun(dir);
    expect([defaults.stage, defaults.arm]).toEqual(['understanding', 'ett']);
    defaults.model.dispose();
    expect((await listRunWeights(dir)).map((w) => [w.stage, w.arm ?? '-'])).toEqual([
      ['understanding', 'ett'],
      ['understanding', 'frozen-embedding'],
      ['generation', 'ett'],
      ['alignment', '-'],
      ['tokenizer', '-'],
    ]);
  });

  it('refuses weights the run lacks and lists the (stage, arm) pairs it has, instead of falling back', async () => {
    const has =
      'it has understanding (stage 2): ett, frozen-embedding; generation (stage 3): ett; alignment (stage 1); tokenizer (stage 0)';
    const err = await loadRun(dir, { arm: 'caption-only' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunDirError);
    expect((err as Error).message).toContain(`has no understanding (stage 2) weights of the caption-only arm`);
    expect((err as Error).message).toContain('(its config trains the arms frozen-embedding, ett)');
    expect((err as Error).message).toContain(has);
    expect((err as Error).message).toMatch(/Choose one of those \(ett: --stage STAGE --arm ARM; loadRun: \{ stage, arm \}\)/);
    await expect(loadRun(dir, { stage: 'generation', arm: 'frozen-embedding' })).rejects.toThrow(
      new RegExp(
        `no generation \\(stage 3\\) weights of the frozen-embedding arm \\(no checkpoint in ${path.join(dir, 'stage3-gen-frozen-embedding')}\\); ${has.replace(/[()]/g, '\\$&')}`,
      ),
    );
    await expect(loadRun(dir, { stage: 'alignment', arm: 'ett' })).rejects.toThrow(
      /alignment \(stage 1\) weights are shared by every arm; leave the arm out/,
    );
    await expect(loadRun(dir, { stage: 'latest' as never })).rejects.toThrow(
      /stage must be one of understanding, generation, alignment, tokenizer/,
    );

    const early = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-run-'));
    await writeFreshRunDir(early, tinyConfig(early, 0), ['stage0-tokenizer', 'stage1-alignment']);
    await expect(loadRun(early, { stage: 'generation' })).rejects.toThrow(
      /\(its config has steps.generation 0: train with steps.generation > 0 for generation weights\); it has alignment \(stage 1\); tokenizer \(stage 0\)/,
    );
    await expect(loadRun(early)).rejects.toThrow(/has no understanding \(stage 2\) weights of the ett arm/);
    await expect(loadRun(path.join(early, 'nope'))).rejects.toThrow(/is not a run directory: .*config.json is missing/);
  });
});

describe('ett CLI: which weights, ett export and --model', () => {
  let dir: string;
  let img: string;
  const env = process.env.ETT_BACKEND;
  beforeAll(async () => {
    process.env.ETT_BACKEND = 'cpu';
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-cli-weights-'));
    await writeFreshRunDir(dir, tinyConfig(dir), PHASES);
    img = path.join(dir, 'img.png');
    fs.writeFileSync(img, encodePng(new SyntheticTextImages({ imageSize: 16, glyphScale: 1 }).sample('test', 0).image, 16, 16));
  });
  afterAll(() => {
    if (env === undefined) delete process.env.ETT_BACKEND;
    else process.env.ETT_BACKEND = env;
  });
  const ckpt = (phase: string) => path.join(dir, phase, 'step-00000001');

  it('caption, eval and reconstruct read understanding (stage 2) weights, generate generation (stage 3); --stage / --arm choose', async () => {
    expect((await cli(['caption', '--run', dir, img])).err[0]).toBe(`weights: ${ckpt('stage2-ett')} (understanding, arm ett)`);
    expect((await cli(['eval', '--run', dir, '--samples', '1'])).out[0]).toBe(`weights: ${ckpt('stage2-ett')} (understanding, arm ett)`);
    const rec = path.join(dir, 'rec.png');
    expect((await cli(['reconstruct', '--run', dir, img, '--out', rec])).err[0]).toBe(
      `weights: ${ckpt('stage2-ett')} (understanding, arm ett)`,
    );
    const gen = path.join(dir, 'gen.png');
    expect((await cli(['generate', '--run', dir, '--out', gen, 'a red circle'])).err).toEqual([
      `weights: ${ckpt('stage3-gen-ett')} (generation, arm ett)`,
    ]);
    const fe = await cli(['caption', '--run', dir, '--arm', 'frozen-embedding', img]);
    expect(fe.err[0]).toBe(`weights: ${ckpt('stage2-frozen-embedding')} (understanding, arm frozen-embedding)`);
    const g = await cli(['caption', '--run', dir, '--stage', 'generation', img]);
    expect(g.err).toEqual([
      `weights: ${ckpt('stage3-gen-ett')} (generation, arm ett)`,
      expect.stringMatching(/^note: these are generation \(stage 3\) weights/),
    ]);
    const t = await cli(['reconstruct', '--run', dir, '--stage', 'tokenizer', img, '--out', rec]);
    expect(t.err[0]).toBe(`weights: ${ckpt('stage0-tokenizer')} (tokenizer)`);

    await expect(cli(['caption', '--run', dir, '--arm', 'caption-only', img])).rejects.toThrow(
      /no understanding \(stage 2\) weights of the caption-only arm .*it has understanding \(stage 2\): ett, frozen-embedding; generation \(stage 3\): ett/,
    );
    await expect(cli(['generate', '--run', dir, '--arm', 'frozen-embedding', 'x'])).rejects.toThrow(RunDirError);
    await expect(cli(['caption', '--run', dir, '--stage', 'latest', img])).rejects.toThrow(
      /--stage must be one of understanding, generation, alignment, tokenizer, got latest/,
    );
    await expect(cli(['caption', '--run', dir, '--stage', 'tokenizer', '--arm', 'ett', img])).rejects.toThrow(
      /tokenizer \(stage 0\) weights are shared by every arm; leave the arm out \(ett: no --arm\)/,
    );
    await expect(cli(['caption', img])).rejects.toThrow(/missing --run DIR \(or --model DIR\)/);
  });

  it('ett export writes a saved model that --model reads: same captions, same evaluation, same generated image', async () => {
    const und = path.join(dir, 'exported-understanding');
    const genDir = path.join(dir, 'exported-generation');
    expect((await cli(['export', '--run', dir, '--stage', 'understanding', '--out', und])).out).toEqual([
      `wrote ${und}: understanding weights of the ett arm from ${ckpt('stage2-ett')}`,
    ]);
    await cli(['export', '--run', dir, '--stage', 'generation', '--out', genDir]);
    const saved = await ETTModel.readPretrainedConfig(und);
    expect(saved.source).toMatchObject({
      run: path.resolve(dir),
      stage: 'understanding',
      arm: 'ett',
      checkpoint: ckpt('stage2-ett'),
      seed: 0,
    });
    expect(saved.source?.data).toEqual({ imageSize: 16, glyphScale: 1 });
    // The exported weights are the stage-2 checkpoint's, not the stage-3 one's.
    const exported = await ETTModel.fromPretrained(und);
    expect(modelFingerprint(exported)).toEqual(await fingerprint(dir, 'stage2-ett'));
    expect(exported.discriminator).toBeUndefined();
    exported.dispose();
    const exportedGen = await ETTModel.fromPretrained(genDir);
    expect(modelFingerprint(exportedGen, 'lm.visual_head.weight')).toEqual(
      await fingerprint(dir, 'stage3-gen-ett', 'lm.visual_head.weight'),
    );
    exportedGen.dispose();

    const viaRun = await cli(['caption', '--run', dir, img]);
    const viaModel = await cli(['caption', '--model', und, img]);
    expect(viaModel.out).toEqual(viaRun.out);
    expect(viaModel.err[0]).toBe(`weights: ${und} (understanding, arm ett)`);
    const evalRun = await cli(['eval', '--run', dir, '--samples', '2']);
    const evalModel = await cli(['eval', '--model', und, '--samples', '2']);
    expect(evalModel.out[1]).toBe(evalRun.out[1]); // the same held-out samples (the run's data config travels in source)
    const a = path.join(dir, 'a.png');
    const b = path.join(dir, 'b.png');
    await cli(['generate', '--run', dir, '--seed', '4', '--out', a, 'a blue square']);
    await cli(['generate', '--model', genDir, '--seed', '4', '--out', b, 'a blue square']);
    expect(fs.readFileSync(b)).toEqual(fs.readFileSync(a));
    const note = await cli(['generate', '--model', und, '--out', b, 'a blue square']);
    expect(note.err[1]).toMatch(/^note: these are understanding weights; the visual head learns to generate in stage 3/);
  });

  it('explains export and --model mistakes', async () => {
    const out = path.join(dir, 'never');
    await expect(cli(['export', '--run', dir, '--out', out])).rejects.toThrow(/missing --stage understanding\|generation/);
    await expect(cli(['export', '--run', dir, '--stage', 'understanding'])).rejects.toThrow(/missing --out DIR/);
    await expect(cli(['export', '--stage', 'understanding', '--out', out])).rejects.toThrow(/missing --run DIR/);
    await expect(cli(['export', '--run', dir, '--stage', 'understanding', '--arm', 'caption-only', '--out', out])).rejects.toThrow(
      /no understanding \(stage 2\) weights of the caption-only arm/,
    );
    expect(fs.existsSync(out)).toBe(false);
    await expect(cli(['caption', '--run', dir, '--model', dir, img])).rejects.toThrow(/either --run DIR or --model DIR, not both/);
    await expect(cli(['caption', '--model', dir, '--stage', 'generation', img])).rejects.toThrow(UsageError);
    await expect(cli(['caption', '--model', path.join(dir, 'stage2-ett'), img])).rejects.toThrow(
      /cannot read .*stage2-ett.config.json .*is not a saved ETT model: write one with model.savePretrained\(dir\) or `ett export/,
    );
    // A run without stage 3: its understanding export has no visual head to generate with.
    const plain = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-cli-weights-'));
    await writeFreshRunDir(plain, { ...tinyConfig(plain, 0), gan: false }, ['stage2-ett']);
    const und = path.join(plain, 'model');
    await cli(['export', '--run', plain, '--stage', 'understanding', '--out', und]);
    await expect(cli(['generate', '--model', und, 'a red circle'])).rejects.toThrow(/needs an AutoregressiveLM with a visual head/);
    await expect(cli(['export', '--run', plain, '--stage', 'generation', '--out', path.join(plain, 'g')])).rejects.toThrow(
      /no generation \(stage 3\) weights of the ett arm .*steps.generation 0.*it has understanding \(stage 2\): ett/,
    );
  });
});
