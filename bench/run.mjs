// End-to-end benchmark of ETT.js at the reference tiny-ETT configuration (the quickstart's model:
// QUICKSTART_CONFIG / buildModel in packages/ettjs/src/experiment.ts), side by side with the same
// models in PyTorch (bench/reference/ett_bench.py). See bench/README.md.
//
//   npm run bench                                   # build, every workload, PyTorch reference
//   node bench/run.mjs --only lm,caption --reps 3   # after `npm run build`
//   node bench/run.mjs --backend cpu --no-reference --json out.json
//
// Each workload runs in its own child process (WASM threads are fixed at start-up, and the
// process's peak RSS then belongs to that workload alone). Training steps are the library's own:
// the stage recipes of `ettjs` run by `@ettjs/trainer`'s Trainer on an in-memory data source that
// returns one fixed batch, with no checkpoints and no metrics file, so a step is exactly one
// optimizer step (critic first where the recipe has one) with no disk I/O; its time is the
// Trainer's own `stepMs`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeFlops, discFlops, encodeFlops, lmFlops, projectorFlops } from './flops.mjs';

const SELF = fileURLToPath(import.meta.url);
const REFERENCE = path.join(path.dirname(SELF), 'reference', 'ett_bench.py');

/** Workloads in run order, with what each one times. */
const WORKLOADS = {
  tokenizer: 'stage-0 tokenizer step: L_vq (L1 + structural + 0.1·GAN + IBQ quant + 0.05·entropy) and the PatchGAN critic step',
  lm: 'text-only caption LM step (textPretraining: [BOS] caption [EOS], L_cap)',
  ett: 'stage-2 ETT step: critic, then L_cap + 0.25·L_vq into tokenizer + projector + LM',
  caption: 'greedy captioning with KV cache: encode 8 images, 48 new tokens each',
  'visual-gen': 'visual-code generation with KV cache: 64 codes for 8 prompts, then decode to images',
};
const CAPTION_TOKENS = 48; // ETTModel.caption's default maxNewTokens

const USAGE = `usage: node bench/run.mjs [--backend wasm|cpu|tensorflow|webgpu] [--threads N] [--reps N] [--warmup N]
                         [--only ${Object.keys(WORKLOADS).join(',')}] [--no-reference] [--torch-threads auto|1|2|1,2] [--json out.json]
                         [--profile] [--torch-device cpu|cuda]`;

function parseArgs(argv) {
  const o = { reps: 5, warmup: 2, only: Object.keys(WORKLOADS), reference: true, torchThreads: 'auto', torchDevice: 'cpu' };
  const value = (i) => {
    if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value\n${USAGE}`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--backend') o.backend = value(i++);
    else if (a === '--threads') o.threads = Number(value(i++));
    else if (a === '--reps') o.reps = Number(value(i++));
    else if (a === '--warmup') o.warmup = Number(value(i++));
    else if (a === '--only') o.only = value(i++).split(',');
    else if (a === '--no-reference') o.reference = false;
    else if (a === '--profile') o.profile = true;
    else if (a === '--torch-threads') o.torchThreads = value(i++);
    else if (a === '--torch-device') o.torchDevice = value(i++);
    else if (a === '--json') o.json = value(i++);
    else if (a === '--child') o.child = value(i++);
    else if (a === '--batch-out') o.batchOut = value(i++);
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (!['cpu', 'cuda'].includes(o.torchDevice)) throw new Error(`--torch-device must be cpu or cuda, got ${o.torchDevice}`);
  for (const name of o.only)
    if (!(name in WORKLOADS)) throw new Error(`unknown workload "${name}"; known: ${Object.keys(WORKLOADS).join(', ')}`);
  for (const [k, v, min] of [
    ['reps', o.reps, 1],
    ['warmup', o.warmup, 0],
    ['threads', o.threads ?? 1, 1],
  ]) {
    if (!Number.isInteger(v) || v < min) throw new Error(`--${k} must be an integer >= ${min}, got ${v}`);
  }
  return o;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---------------------------------------------------------------- child: one workload, ETT.js

/** FLOPs of one run of a workload (see flops.mjs): tokenizer, LM and sequence shapes from the model. */
function workloadFlops(name, model, config, shapes) {
  const t = model.tokenizer.config;
  const g = model.discriminator.disc.config;
  const lm = model.lm.config;
  const { B, S } = { B: config.batchSize, S: model.imageSize };
  const side = S / model.tokenizer.downsample;
  const N = side * side;
  const enc = encodeFlops(t, B, S);
  const dec = decodeFlops(t, B, side);
  const disc = discFlops(g, B, S);
  const critic = enc + dec + 2 * 3 * disc; // fake images forward only; D on real and fake, trained
  const proj = (rows) => projectorFlops(t.codeDim, lm.hiddenSize, rows);
  switch (name) {
    case 'tokenizer':
      return critic + 3 * (enc + dec) + 2 * disc;
    case 'lm':
      return 3 * lmFlops(lm, B, shapes.textLength, shapes.textLength, shapes.textLength);
    case 'ett':
      return (
        critic + 3 * (enc + dec + proj(B * N) + lmFlops(lm, B, shapes.captionLength, shapes.captionLength, shapes.captionLength)) + 2 * disc
      );
    case 'caption': {
      const prefix = 2 + N + 1; // [BOS] <boi> v_1..v_N <eoi>
      let f = encodeFlops(t, B, S) + proj(B * N) + lmFlops(lm, B, prefix, prefix, 1);
      for (let i = 1; i < CAPTION_TOKENS; i++) f += lmFlops(lm, B, 1, prefix + i, 1);
      return f;
    }
    case 'visual-gen': {
      // Each forward computes the last position's text logits (logits: 'last') and its visual-code logits.
      const prefix = shapes.promptLength + 2; // [BOS] prompt <boi>
      const visualHead = 2 * B * lm.hiddenSize * lm.visualVocabSize;
      let f = lmFlops(lm, B, prefix, prefix, 1) + visualHead;
      for (let i = 1; i < N; i++) f += proj(B) + lmFlops(lm, B, 1, prefix + i, 1) + visualHead;
      return f + dec;
    }
    default:
      throw new Error(name);
  }
}

async function child(o) {
  const name = o.child;
  const tf = await import('@tensorflow/tfjs-core');
  const { initBackend } = await import('@ettjs/backend');
  const { QUICKSTART_CONFIG, buildModel, syntheticSource, tokenizerPretraining, textPretraining, semantic, disposeTokens } = await import(
    'ettjs'
  );
  const { Trainer } = await import('@ettjs/trainer');
  const { SyntheticTextImages } = await import('@ettjs/data');
  const { generate } = await import('@ettjs/autoregressive-lm');

  const backend = await initBackend({ ...(o.backend ? { backend: o.backend } : {}), ...(o.threads ? { threads: o.threads } : {}) });
  const c = QUICKSTART_CONFIG;
  // Generation from text needs the LM's visual-code head over the tokenizer's codes (examples/generation).
  const config = name === 'visual-gen' ? { ...c, lm: { ...c.lm, visualVocabSize: c.tokenizer.codebookSize } } : c;
  const model = buildModel(config, 'ett');
  const data = new SyntheticTextImages({ ...c.data, seed: c.seed });
  const batch = await syntheticSource(model, data, c.batchSize, c.seed).next();
  const B = c.batchSize;
  // Equal-length prompts: generateImages then runs the whole batch at once (no left padding).
  const prompts = Array.from({ length: B }, (_, i) => `a red square at the top. text: Q${i}.`);
  const promptIds = prompts.map((p) => model.text.encode(p));
  const shapes = {
    textLength: Math.max(...batch.captions.map((x) => x.length)) + 2,
    captionLength: 2 + model.numVisual + Math.max(...batch.captions.map((x) => x.length)) + 2,
    promptLength: promptIds[0].length,
  };
  if (o.batchOut) {
    fs.writeFileSync(
      o.batchOut,
      JSON.stringify({
        shape: batch.images.shape,
        images: Array.from(await batch.images.data()),
        captions: batch.captions,
        promptIds,
        ids: model.ids,
        captionTokens: CAPTION_TOKENS,
      }),
    );
  }
  const params = Object.fromEntries(['tokenizer', 'adapter', 'lm', 'discriminator'].map((k) => [k, model[k].parameterCount()]));
  const flops = workloadFlops(name, model, config, shapes);
  let result;
  // --profile: every kernel call timed, steps marked, the stall-free estimate of kernel-profile.mjs.
  const profiler = o.profile ? await import('./kernel-profile.mjs') : null;
  profiler?.install();

  if (name === 'tokenizer' || name === 'lm' || name === 'ett') {
    const stage = (steps) => {
      if (name === 'tokenizer') return tokenizerPretraining(model, { steps, lr: c.lr.tokenizer });
      if (name === 'lm') return textPretraining(model, { steps, lr: c.lr.text });
      return semantic(model, { steps, lr: c.lr.semantic, arm: 'ett', alpha: c.alpha });
    };
    // One fixed batch, never disposed by the Trainer: every step sees the same shapes and no data loading.
    const fixed = { next: async () => batch, cursor: () => 0, restore: async () => {} };
    const trainer = (steps, onStep) =>
      new Trainer({ model, data: fixed, stages: [stage(steps)], progress: 'none', disposeBatches: false, print: () => {}, onStep });
    const records = [];
    const timedRun = trainer(o.warmup + o.reps, (r) => {
      records.push(r);
      profiler?.mark();
    });
    await timedRun.fit();
    const timed = records.slice(o.warmup);
    const stallFree = profiler?.report(o.warmup);
    // One more step under tf.profile, for the tensor-memory high-water (not timed: profiling is slow).
    const prof = await tf.profile(async () => {
      const profiledRun = trainer(1, () => {});
      await profiledRun.fit();
    });
    result = {
      samples: timed.map((r) => r.stepMs),
      numTensors: timed.map((r) => r.numTensors),
      skipped: timed.filter((r) => r.skipped).length,
      peakBytes: prof.peakBytes,
      ...(stallFree ? { profile: stallFree } : {}),
      items: name === 'lm' ? B * (shapes.textLength - 1) : B,
      unit: name === 'lm' ? 'tok/s' : 'img/s',
    };
  } else {
    model.tokenizer.eval?.();
    let run;
    let items;
    if (name === 'caption') {
      // ETTModel.caption's prefix, built from public pieces, then the library's KV-cache greedy
      // `generate` without stop tokens, so every run decodes exactly CAPTION_TOKENS per image.
      const { bos, boi, eoi } = model.ids;
      items = B * CAPTION_TOKENS;
      run = async () => {
        const prefix = tf.tidy(() => {
          const { visual, tokens } = model.encodeImages(batch.images);
          disposeTokens(tokens);
          const ids = (row) =>
            model.lm.embed(
              tf.tensor2d(
                Array.from({ length: B }, () => row),
                [B, row.length],
                'int32',
              ),
            );
          return tf.concat([ids([bos, boi]), visual, ids([eoi])], 1);
        });
        const out = await generate(model.lm, { inputsEmbeds: prefix, maxNewTokens: CAPTION_TOKENS, stopTokens: [] });
        prefix.dispose();
        if (out.tokens.flat().length !== items) throw new Error(`caption: expected ${items} tokens, got ${out.tokens.flat().length}`);
      };
    } else {
      items = B * model.numVisual;
      run = async () => {
        const { images, codes } = await model.generateImages(prompts);
        images.dispose();
        if (codes.flat().length !== items) throw new Error(`visual-gen: expected ${items} codes, got ${codes.flat().length}`);
      };
    }
    for (let i = 0; i < o.warmup; i++) {
      await run();
      profiler?.mark();
    }
    const samples = [];
    const numTensors = [];
    for (let i = 0; i < o.reps; i++) {
      const t0 = performance.now();
      await run();
      samples.push(performance.now() - t0);
      profiler?.mark();
      numTensors.push(tf.memory().numTensors);
    }
    const stallFree = profiler?.report(o.warmup);
    const prof = await tf.profile(run);
    result = {
      samples,
      numTensors,
      skipped: 0,
      peakBytes: prof.peakBytes,
      items,
      unit: 'tok/s',
      ...(stallFree ? { profile: stallFree } : {}),
    };
  }
  const line = {
    name,
    backend:
      `${backend.backend}${backend.threads ? ` ${backend.threads}T` : ''}` +
      (backend.native?.loaded ? ` + native kernels (${backend.native.isa}, ${backend.native.threads}T)` : ''),
    ...result,
    ms: median(result.samples),
    best: Math.min(...result.samples),
    flops,
    params,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
    warnings: backend.warnings,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

// ---------------------------------------------------------------- main: children, reference, table

function lastJsonLine(text) {
  const line = text
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  return line ? JSON.parse(line) : null;
}

/** The first python that imports torch: `python3` on PATH, else Debian's (MEASUREMENTS.md §3–5). */
function findTorchPython() {
  for (const py of [process.env.ETT_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean)) {
    const r = spawnSync(py, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { python: py, version: r.stdout.trim() };
  }
  return null;
}

function fmt(x, digits = 1) {
  return x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(digits);
}

/** GFLOP/s of `flops` in `ms`, two decimals below 10. */
function gflops(flops, ms) {
  const g = flops / 1e9 / (ms / 1000);
  return fmt(g, g < 10 ? 2 : 1);
}

function printTable(head, rows) {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

async function main(o) {
  const started = performance.now();
  const loadStart = os.loadavg();
  const batchFile = path.join(os.tmpdir(), `ett-bench-batch-${process.pid}.json`);
  const childArgs = [
    ...(o.backend ? ['--backend', o.backend] : []),
    ...(o.threads ? ['--threads', String(o.threads)] : []),
    ...['--reps', String(o.reps), '--warmup', String(o.warmup)],
    ...(o.profile ? ['--profile'] : []),
  ];
  const py = o.reference ? findTorchPython() : null;
  const ours = [];
  const ref = { torch: py?.version, workloads: [] };
  let refFailed = null;
  const spawn = (what, cmd, args) => {
    process.stderr.write(`${what} ...`);
    const t0 = performance.now();
    const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
    const res = r.status === 0 ? lastJsonLine(r.stdout) : null;
    process.stderr.write(res ? ` ${((performance.now() - t0) / 1000).toFixed(0)} s\n` : ` failed (exit ${r.status})\n`);
    return res;
  };
  try {
    // Workload by workload, ETT.js then PyTorch: on a shared machine the pair then sees similar load.
    for (const [i, name] of o.only.entries()) {
      const load = os.loadavg()[0];
      const res = spawn(`ETT.js ${name}`, process.execPath, [
        SELF,
        '--child',
        name,
        ...childArgs,
        ...(i === 0 ? ['--batch-out', batchFile] : []),
      ]);
      if (res) ours.push({ ...res, load });
      if (!py || refFailed || !fs.existsSync(batchFile)) continue;
      const args = [
        REFERENCE,
        '--only',
        name,
        '--reps',
        String(o.reps),
        '--warmup',
        String(o.warmup),
        '--threads',
        o.torchThreads,
        '--device',
        o.torchDevice,
      ];
      const out = spawn(`PyTorch ${name}`, py.python, [...args, '--batch', batchFile]);
      if (out) ref.workloads.push(...out.workloads);
      else refFailed = 'PyTorch reference failed; see the stderr above';
    }
  } finally {
    fs.rmSync(batchFile, { force: true });
  }
  let refNote;
  if (!o.reference) refNote = 'PyTorch reference skipped (--no-reference)';
  else if (!py) refNote = 'PyTorch reference skipped: no python3 with torch (tried $ETT_BENCH_PYTHON, python3, /usr/bin/python3)';
  else if (refFailed) refNote = refFailed;
  else
    refNote = `PyTorch ${py.version} (${py.python}) on ${o.torchDevice === 'cpu' ? 'cpu' : `${ref.workloads[0]?.device ?? 'cuda'} (float32, TF32 off)`}, torch.set_num_threads: ${
      o.torchDevice !== 'cpu' && o.torchThreads === 'auto'
        ? '1'
        : o.torchThreads === 'auto'
          ? 'best of 1 and 2 for tokenizer and ett, 1 for the rest (--torch-threads auto)'
          : `best of {${o.torchThreads}}`
    }`;
  report(o, ours, py && ref.workloads.length > 0 ? ref : null, refNote, loadStart, started);
}

function report(o, ours, ref, refNote, loadStart, started) {
  if (ours.length === 0) {
    console.error('no ETT.js workload completed');
    process.exit(1);
  }
  const tfVersion = JSON.parse(fs.readFileSync(new URL('../node_modules/@tensorflow/tfjs-core/package.json', import.meta.url))).version;
  const load = os.loadavg();
  console.log(
    `\nETT.js reference tiny-ETT (quickstart model, batch 8, 32×32), tfjs ${tfVersion} ${ours[0].backend}, node ${process.version}, ` +
      `${os.cpus().length} CPUs; load average ${loadStart[0].toFixed(1)} at start, ${load[0].toFixed(1)} at end (1 min)`,
  );
  console.log(`median of ${o.reps} timed runs after ${o.warmup} warm-up runs; best run in parentheses. ${refNote}.\n`);
  const refOf = (name) => ref?.workloads?.find((w) => w.name === name);
  printTable(
    [
      'workload',
      'load',
      'ETT.js ms',
      'ETT.js throughput',
      'GFLOP/s',
      'PyTorch ms',
      'PyTorch GFLOP/s',
      'speed ratio',
      'PyTorch is',
      'ratio of best runs',
    ],
    ours.map((w) => {
      const p = refOf(w.name);
      const ratio = p ? p.ms / w.ms : undefined;
      return [
        w.name,
        fmt(w.load),
        `${fmt(w.ms)} (${fmt(w.best)})`,
        `${fmt(w.items / (w.ms / 1000))} ${w.unit}`,
        gflops(w.flops, w.ms),
        p ? `${fmt(p.ms)} (${fmt(p.best)}) ${p.threads}T` : '–',
        p ? gflops(p.flops, p.ms) : '–',
        ratio === undefined ? '–' : ratio.toFixed(3),
        ratio === undefined ? '–' : ratio >= 1 ? `${ratio.toFixed(2)}× slower` : `${(1 / ratio).toFixed(1)}× faster`,
        p ? (p.best / w.best).toFixed(3) : '–',
      ];
    }),
  );
  console.log(
    '\nspeed ratio = PyTorch ms / ETT.js ms of the medians (≥ 1.0: ETT.js at least as fast; "PyTorch is N× faster" is its inverse); ' +
      'the last column is the same ratio of the best runs, less sensitive to load.',
  );
  if (ref) {
    const byThreads = ours
      .map((w) => refOf(w.name))
      .filter(Boolean)
      .map(
        (p) =>
          `${p.name} ${Object.entries(p.byThreads)
            .map(([t, ms]) => `${t}T ${fmt(ms)}`)
            .join(' / ')}`,
      );
    console.log(`PyTorch median ms by torch.set_num_threads: ${byThreads.join('; ')}`);
  }
  if (ours.some((w) => w.profile)) {
    console.log(
      '\nstall-free estimates (--profile, bench/kernel-profile.mjs): "clipped" = each run less its stalls (excesses of over 2 ms ' +
        'above a call\'s fastest time), best and median over the runs; "lower bound" = every call and gap at its fastest; ' +
        'PyTorch has no such estimate: its best run, whose steps are short enough to miss the stalls',
    );
    for (const w of ours.filter((x) => x.profile)) {
      const q = w.profile;
      const p = refOf(w.name);
      const top = Object.entries(q.byKernel)
        .slice(0, 6)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ');
      console.log(
        `  ${w.name.padEnd(10)} clipped ${fmt(q.clippedMs)} ms (median ${fmt(q.clippedMedianMs)}), best run ${fmt(q.bestObservedMs)}, lower bound ${fmt(q.stallFreeMs)} = kernels ${fmt(q.kernelMs)} + between ${fmt(q.betweenMs)} (${q.callsPerStep} calls, ${q.stepsUsed} runs)` +
          `${p ? `; PyTorch best run ${fmt(p.best)} ms (ratio ${(p.best / q.clippedMs).toFixed(2)})` : ''}; top: ${top}`,
      );
    }
  }
  console.log('GFLOP/s from bench/flops.mjs counts:');
  for (const w of ours) {
    const p = refOf(w.name);
    const off = p && Math.abs(p.flops - w.flops) > 0.01 * w.flops;
    console.log(
      `  ${w.name.padEnd(10)} ${fmt(w.flops / 1e9, 3)} GFLOP per run${p ? ` (PyTorch counted ${fmt(p.flops / 1e9, 3)}${off ? ': WARNING, the counts differ' : ''})` : ''}` +
        ` — ${WORKLOADS[w.name]}`,
    );
  }
  console.log(
    '\nmemory (ETT.js): tf.memory() high-water during one profiled run, peak RSS of the workload process; numTensors after each timed run',
  );
  for (const w of ours) {
    const flat = w.numTensors.every((n) => n === w.numTensors[0]);
    const p = refOf(w.name);
    console.log(
      `  ${w.name.padEnd(10)} peak ${fmt(w.peakBytes / 2 ** 20)} MiB tensors, RSS ${fmt(w.maxRssMB, 0)} MB${p ? ` (PyTorch RSS ${fmt(p.maxRssMB, 0)} MB)` : ''}; ` +
        `numTensors ${w.numTensors.join(' ')} ${flat ? '(flat)' : 'NOT FLAT: a leak'}${w.skipped ? `; ${w.skipped} step(s) skipped as non-finite` : ''}`,
    );
  }
  const names = ['tokenizer', 'adapter', 'lm', 'discriminator'];
  const paramRows = [];
  for (const w of ours) {
    const p = refOf(w.name);
    for (const k of names) {
      const row = paramRows.find((r) => r.k === k && r.js === w.params[k]);
      if (!row) paramRows.push({ k, js: w.params[k], torch: p?.params?.[k], where: w.name });
    }
  }
  console.log('\nparameters, ETT.js vs PyTorch:');
  for (const r of paramRows) {
    const same = r.torch === undefined ? '' : r.torch === r.js ? ' (match)' : ` WARNING: PyTorch has ${r.torch}`;
    console.log(
      `  ${r.k.padEnd(13)} ${String(r.js).padStart(8)}${r.torch === undefined ? '' : ` / ${r.torch}`}${same}${r.k === 'lm' ? ` [${r.where}]` : ''}`,
    );
  }
  for (const w of ours) {
    const p = refOf(w.name);
    if (!p) continue;
    for (const k of names) {
      if (p.params[k] !== w.params[k])
        console.log(`WARNING: ${w.name}: ${k} has ${w.params[k]} parameters in ETT.js but ${p.params[k]} in PyTorch`);
    }
  }
  if (ours[0].warnings?.length) console.log(`backend warnings: ${ours[0].warnings.join(' ')}`);
  console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (o.json) {
    fs.writeFileSync(
      o.json,
      `${JSON.stringify({ loadAverage: { start: loadStart, end: load }, options: o, etts: ours, pytorch: ref, note: refNote }, null, 2)}\n`,
    );
    console.log(`wrote ${o.json}`);
  }
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(e.message);
  process.exit(2);
}
if (opts.child) await child(opts);
else await main(opts);
