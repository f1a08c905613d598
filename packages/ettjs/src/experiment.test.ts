import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFreshRunDir } from '../test/run-dir-fixture';
import { QUICKSTART_CONFIG, resolveExperimentConfig, runExperiment } from './experiment';
import { readMetricsLog } from './report';

const tiny = (runDir: string) => ({
  runDir,
  backend: 'cpu' as const,
  arms: ['frozen-embedding', 'ett'] as ('frozen-embedding' | 'ett')[],
  batchSize: 2,
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
  steps: { text: 2, tokenizer: 2, alignment: 2, semantic: 2, generation: 2 },
  evalSamples: 2,
  track: { every: 1, samples: 2 },
  progress: 'none' as const,
});

const stepLines = (file: string) =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"type":"step"')).length;

describe('runExperiment', () => {
  it('runs stages 0 -> 1 -> 2 -> 3 per arm, writes checkpoints, metrics and the report, and resumes without retraining', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-exp-'));
    const logs: string[] = [];
    const r = await runExperiment(tiny(dir), { log: (s) => logs.push(s) });
    expect(r.arms.map((a) => a.arm)).toEqual(['frozen-embedding', 'ett']);
    for (const a of [r.beforeSemantic, ...r.arms.map((x) => x.eval)]) {
      expect(a.samples).toBe(2);
      for (const k of ['shape', 'colour', 'position', 'textExact', 'textChar', 'usage'] as const) {
        expect(a[k]).toBeGreaterThanOrEqual(0);
        expect(a[k]).toBeLessThanOrEqual(1);
      }
      expect(Number.isFinite(a.psnr)).toBe(true);
      expect(a.codeCounts.reduce((s, c) => s + c, 0)).toBe(2 * 16); // every visual token counted once
    }
    const phases = ['lm-text', 'stage0-tokenizer', 'stage1-alignment', 'stage2-frozen-embedding', 'stage2-ett'];
    for (const d of [...phases, 'stage3-gen-frozen-embedding', 'stage3-gen-ett']) {
      expect(stepLines(path.join(dir, d, 'metrics.jsonl')), d).toBe(2);
      expect(fs.readFileSync(path.join(dir, d, 'latest'), 'utf8').trim()).toMatch(/step-0+2/);
    }
    // The learning curve: an eval record per stage-2 step with every field, printed as it happens,
    // then the summary with chance and what tuning changed, and the per-arm accuracy charts.
    const evals = readMetricsLog(path.join(dir, 'stage2-ett', 'metrics.jsonl')).filter((x) => x.type === 'eval');
    expect(evals.map((e) => e.stageStep)).toEqual([1, 2]);
    expect(Object.keys(evals[1].metrics as object).sort()).toEqual([
      'colour',
      'position',
      'psnr',
      'shape',
      'textChar',
      'textExact',
      'usage',
    ]);
    expect((evals[1].metrics as Record<string, number>).textChar).toBe(r.arms[1].eval.textChar); // same 2 images, same weights
    expect(logs).toContainEqual(expect.stringMatching(/^\[stage 2 ett\] step 2: shape \d+\.\d%, colour/));
    expect(logs).toContainEqual(expect.stringMatching(/^chance +25\.0% +16\.7% +20\.0% +0\.1% +2\.8%$/));
    expect(logs).toContainEqual(expect.stringMatching(/^ett vs frozen-embedding \(2 samples;/));
    const ettLog = fs.readFileSync(path.join(dir, 'stage2-ett', 'metrics.jsonl'), 'utf8');
    expect(ettLog).toContain('"vq.reconstruction"');
    expect(ettLog).toContain('"discLoss"');
    const html = fs.readFileSync(r.reportPath, 'utf8');
    expect(html).toContain('stage 2: ett');
    expect(html).toContain('reconstructions-ett.png');
    expect(html).toContain('aria-label="stage 2: colour"');
    expect(html).toContain('ett vs frozen-embedding (2 samples');
    expect(fs.existsSync(path.join(dir, 'reconstructions-stage0.png'))).toBe(true);
    // Stage 3: the visual-code loss was logged, images were sampled, and the run loads for generation.
    expect(fs.readFileSync(path.join(dir, 'stage3-gen-ett', 'metrics.jsonl'), 'utf8')).toContain('"visual"');
    expect(html).toContain('generated-ett.png');
    expect(fs.readFileSync(path.join(dir, 'generated-ett.png')).subarray(1, 4).toString()).toBe('PNG');
    const { loadRun } = await import('./run-dir');
    const loaded = await loadRun(dir, { stage: 'generation', arm: 'ett' });
    expect(loaded.checkpoint).toContain(path.join('stage3-gen-ett', 'step-'));
    expect(loaded.config.lm.visualVocabSize).toBe(32);
    loaded.model.dispose();

    // Resuming a finished run loads every phase from its checkpoint and trains nothing more.
    const again = await runExperiment(tiny(dir), { resume: true, log: () => {} });
    expect(stepLines(path.join(dir, 'stage2-ett', 'metrics.jsonl'))).toBe(2);
    expect(again.arms[1].eval.textChar).toBe(r.arms[1].eval.textChar);
    expect(again.arms[1].eval.psnr).toBeCloseTo(r.arms[1].eval.psnr, 4);
  }, 600_000);

  it('rejects unknown config keys before doing anything', () => {
    expect(() => resolveExperimentConfig({ stpes: 3 } as never)).toThrow(/unknown key\(s\) stpes/);
    expect(() => resolveExperimentConfig({ arms: ['frozen-index'] })).toThrow(/arm "frozen-index" is not supported here/);
    expect(() => resolveExperimentConfig({ lm: { ...QUICKSTART_CONFIG.lm, visualVocabSize: 7 } })).toThrow(
      /visualVocabSize 7 must equal the tokenizer's codebookSize 256/,
    );
    expect(resolveExperimentConfig().lm.visualVocabSize).toBe(256);
    expect(resolveExperimentConfig({ steps: { ...QUICKSTART_CONFIG.steps, generation: 0 } }).lm.visualVocabSize).toBeUndefined();
  });
});

describe('ett CLI', () => {
  it('Ctrl-C in ett train stops after the current step with a checkpoint, and --resume finishes the run without repeating steps', async () => {
    const { runCli } = await import('./cli-commands');
    const { TrainingStoppedError } = await import('./experiment');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-sigint-'));
    const cfg = { ...tiny(dir), arms: ['ett'], steps: { text: 2, tokenizer: 3, alignment: 1, semantic: 1, generation: 0 } };
    fs.writeFileSync(path.join(dir, 'cfg.json'), JSON.stringify(cfg));
    const listeners = process.listenerCount('SIGINT');
    const log = console.log;
    const error = console.error;
    const errors: string[] = [];
    console.error = (...a: unknown[]) => errors.push(a.join(' '));
    // SIGINT as the terminal sends it, once stage 0 has begun (an event: a real signal would reach vitest too).
    console.log = (...a: unknown[]) => {
      if (String(a[0]).startsWith('stage 0')) setImmediate(() => process.emit('SIGINT', 'SIGINT'));
    };
    try {
      const stopped = await runCli(['train', '--config', path.join(dir, 'cfg.json')]).then(
        () => null,
        (e: unknown) => e,
      );
      expect(stopped).toBeInstanceOf(TrainingStoppedError);
      expect((stopped as InstanceType<typeof TrainingStoppedError>).phase).toBe('stage0-tokenizer');
      expect((stopped as Error).message).toMatch(/run it again with --resume/);
      expect(errors.join('\n')).toMatch(/SIGINT: stopping after the current step and writing a checkpoint/);
      expect(process.listenerCount('SIGINT')).toBe(listeners);
      const done = stepLines(path.join(dir, 'stage0-tokenizer', 'metrics.jsonl'));
      expect(done).toBeLessThan(3); // stopped inside stage 0
      expect(fs.existsSync(path.join(dir, 'stage1-alignment'))).toBe(false);
      console.log = () => {};
      await runCli(['train', '--config', path.join(dir, 'cfg.json'), '--resume']);
      expect(stepLines(path.join(dir, 'stage0-tokenizer', 'metrics.jsonl'))).toBe(3);
      expect(stepLines(path.join(dir, 'stage2-ett', 'metrics.jsonl'))).toBe(1);
    } finally {
      console.log = log;
      console.error = error;
    }
  }, 600_000);

  it('evaluates, captions, reconstructs and reports a run directory, and explains mistakes', async () => {
    const { runCli, UsageError } = await import('./cli-commands');
    const { encodePng, SyntheticTextImages } = await import('@ettjs/data');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-cli-'));
    const cfg = { ...tiny(dir), arms: ['ett'], steps: { text: 1, tokenizer: 1, alignment: 1, semantic: 1, generation: 1 } };
    fs.writeFileSync(path.join(dir, 'cfg.json'), JSON.stringify(cfg));
    const out: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => out.push(a.join(' '));
    const env = process.env.ETT_BACKEND;
    process.env.ETT_BACKEND = 'cpu';
    try {
      await runCli(['train', '--config', path.join(dir, 'cfg.json')]);
      expect(out.join('\n')).toMatch(/^stage 2: ett +\d+\.\d% +\d+\.\d%/m);
      const sample = new SyntheticTextImages({ imageSize: 16, glyphScale: 1 }).sample('test', 0);
      const img = path.join(dir, 'img.png');
      fs.writeFileSync(img, encodePng(sample.image, 16, 16));
      out.length = 0;
      await runCli(['caption', '--run', dir, img]);
      expect(out[0]).toMatch(new RegExp(`^${img.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
      await runCli(['reconstruct', '--run', dir, img, '--out', path.join(dir, 'rec.png')]);
      expect(fs.readFileSync(path.join(dir, 'rec.png')).subarray(1, 4).toString()).toBe('PNG');
      out.length = 0;
      await runCli(['report', dir]);
      expect(out.join('\n')).toContain(`report: ${path.join(dir, 'report.html')}`);
      await expect(runCli(['frobnicate'])).rejects.toThrow(UsageError);
      await expect(runCli(['eval'])).rejects.toThrow(/missing --run DIR/);
      await expect(runCli(['eval', '--run', path.join(dir, 'nope')])).rejects.toThrow(/is not a run directory/);
      await expect(runCli(['caption', '--run', dir, path.join(dir, 'missing.png')])).rejects.toThrow(/no such image/);
      await runCli(['generate', '--run', dir, '--out', path.join(dir, 'gen.png'), 'a red circle']);
      expect(fs.readFileSync(path.join(dir, 'gen.png')).subarray(1, 4).toString()).toBe('PNG');
      // A run trained without stage 3 has no generation weights, and its LM no visual head to generate with.
      // (a run directory by hand: its config and one checkpoint of fresh weights)
      const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-cli-'));
      const cfg2 = resolveExperimentConfig({ ...tiny(dir2), gan: false, steps: { ...cfg.steps, generation: 0 } });
      expect(cfg2.lm.visualVocabSize).toBeUndefined();
      await writeFreshRunDir(dir2, cfg2);
      await expect(runCli(['generate', '--run', dir2, 'a red circle'])).rejects.toThrow(
        /has no generation \(stage 3\) weights of the ett arm/,
      );
      await expect(runCli(['generate', '--run', dir2, '--stage', 'tokenizer', 'a red circle'])).rejects.toThrow(
        /needs an AutoregressiveLM with a visual head/,
      );
    } finally {
      console.log = log;
      if (env === undefined) delete process.env.ETT_BACKEND;
      else process.env.ETT_BACKEND = env;
    }
  }, 600_000);
});
