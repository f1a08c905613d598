// Memory soak of ETT.js training (issue #10: "memory flat over 10 000 steps"). Runs the library's
// own stage-2 ETT step (`semantic`, arm 'ett', α 0.25, the PatchGAN critic first) with
// `@ettjs/trainer`'s Trainer for N steps in one `fit`, as bench/run.mjs's `ett` workload does, but on
// a smaller default configuration and on a data source that cycles over several distinct synthetic
// batches (so the quantizer's usage window and dead-code restart see varied data). Every K steps it
// samples tf.memory(), process.memoryUsage(), the WASM heap and the step time; at the end it prints
// a summary and a verdict. See bench/README.md.
//
//   node bench/soak.mjs                                  # 10 000 steps, sample every 100
//   node bench/soak.mjs --steps 300 --every 20
//   node bench/soak.mjs --json soak.json --svg soak.svg --backend wasm --threads 1
//
// Exit code: 0 flat, 1 not flat (numTensors changed after warm-up, or the JS heap or RSS grew over the
// second half by more than --max-heap-slope / --max-rss-slope beyond the noise), 2 bad arguments or
// a failed run, 130 interrupted (SIGINT; the summary and the outputs are still written).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';

const USAGE = `usage: node bench/soak.mjs [--steps N] [--every K] [--warmup W] [--image-size S] [--batch B] [--batches M] [--lm-layers L]
                          [--backend wasm|cpu|tensorflow] [--threads N] [--max-rss-slope KiB] [--max-heap-slope KiB] [--no-gc]
                          [--json out.json] [--svg out.svg] [--heap-snapshots STEP,STEP,...] [--keep-records N|Infinity]`;

function parseArgs(argv) {
  // Defaults: the quickstart model at its smallest useful size (16×16 images, batch 2, a 1-layer LM). A
  // step is then mostly per-op overhead (~0.3–0.5 s on the 2-core build machine), so 10 000 steps take
  // about an hour; --image-size 32 --batch 8 --lm-layers 2 is bench/run.mjs's `ett` workload.
  const o = { steps: 10_000, every: 100, imageSize: 16, batch: 2, batches: 8, lmLayers: 1, maxRssSlope: 1024, maxHeapSlope: 64, gc: true };
  const value = (i) => {
    if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value\n${USAGE}`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--steps') o.steps = Number(value(i++));
    else if (a === '--every') o.every = Number(value(i++));
    else if (a === '--warmup') o.warmup = Number(value(i++));
    else if (a === '--image-size') o.imageSize = Number(value(i++));
    else if (a === '--batch') o.batch = Number(value(i++));
    else if (a === '--batches') o.batches = Number(value(i++));
    else if (a === '--lm-layers') o.lmLayers = Number(value(i++));
    else if (a === '--backend') o.backend = value(i++);
    else if (a === '--threads') o.threads = Number(value(i++));
    else if (a === '--max-rss-slope') o.maxRssSlope = Number(value(i++));
    else if (a === '--max-heap-slope') o.maxHeapSlope = Number(value(i++));
    else if (a === '--no-gc') o.gc = false;
    else if (a === '--keep-records') o.keepRecords = Number(value(i++));
    else if (a === '--heap-snapshots') o.heapSnapshots = value(i++).split(',').map(Number);
    else if (a === '--json') o.json = value(i++);
    else if (a === '--svg') o.svg = value(i++);
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  // Warm-up: the first 5 % of the steps (at least one sample interval), after which every step's
  // numTensors must be the same number.
  o.warmup ??= Math.max(o.every, Math.ceil((0.05 * o.steps) / o.every) * o.every);
  for (const [k, v, min] of [
    ['steps', o.steps, 1],
    ['every', o.every, 1],
    ['warmup', o.warmup, 0],
    ['image-size', o.imageSize, 16],
    ['batch', o.batch, 1],
    ['batches', o.batches, 1],
    ['threads', o.threads ?? 1, 1],
    ['lm-layers', o.lmLayers, 1],
  ]) {
    if (!Number.isInteger(v) || v < min) throw new Error(`--${k} must be an integer >= ${min}, got ${v}`);
  }
  for (const st of o.heapSnapshots ?? []) {
    if (!Number.isInteger(st) || st < 1 || st > o.steps) throw new Error(`--heap-snapshots: ${st} is not a step in 1..${o.steps}`);
  }
  if (!(o.maxRssSlope >= 0)) throw new Error(`--max-rss-slope must be a number >= 0 (KiB per 1000 steps), got ${o.maxRssSlope}`);
  if (!(o.maxHeapSlope >= 0)) throw new Error(`--max-heap-slope must be a number >= 0 (KiB per 1000 steps), got ${o.maxHeapSlope}`);
  if (o.warmup >= o.steps) throw new Error(`--warmup ${o.warmup} must be below --steps ${o.steps}`);
  return o;
}

let o;
try {
  o = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(e.message);
  process.exit(2);
}

// A full GC before each sample makes heapUsed the live heap rather than a point on the GC sawtooth
// (and RSS less noisy); it frees only garbage, so it hides no leak.
let gc = null;
if (o.gc) {
  v8.setFlagsFromString('--expose-gc');
  gc = vm.runInNewContext('gc');
}

const tf = await import('@tensorflow/tfjs-core');
const { initBackend } = await import('@ettjs/backend');
const { QUICKSTART_CONFIG, buildModel, syntheticSource, semantic } = await import('ettjs');
const { Trainer } = await import('@ettjs/trainer');
const { SyntheticTextImages } = await import('@ettjs/data');

const backend = await initBackend({ ...(o.backend ? { backend: o.backend } : {}), ...(o.threads ? { threads: o.threads } : {}) });
const backendName =
  `${backend.backend}${backend.threads ? ` ${backend.threads}T` : ''}` +
  (backend.native?.loaded ? ` + native kernels (${backend.native.isa}, ${backend.native.threads}T)` : '');

// The quickstart model (VQ_TOKENIZER_TINY, the d-128 2-layer LM, the critic), at --image-size and --batch.
// Below 32 px the caption text is drawn with 1 px per font pixel (at 2 it leaves no room for the shape).
const glyphScale = o.imageSize >= 32 ? 2 : 1;
const c = {
  ...QUICKSTART_CONFIG,
  batchSize: o.batch,
  data: { ...QUICKSTART_CONFIG.data, imageSize: o.imageSize, glyphScale },
  lm: { ...QUICKSTART_CONFIG.lm, numLayers: o.lmLayers },
};
const model = buildModel(c, 'ett');

// --batches distinct batches of the synthetic training set, kept as host arrays; every next() makes
// new tensors of the next one in turn and the Trainer disposes them after the step, as with a real loader.
const source = syntheticSource(model, new SyntheticTextImages({ ...c.data, seed: c.seed }), c.batchSize, c.seed);
const hostBatches = [];
for (let i = 0; i < o.batches; i++) {
  const b = await source.next();
  hostBatches.push({ shape: b.images.shape, images: b.images.dataSync().slice(), captions: b.captions });
  b.images.dispose();
}
let cursor = 0;
const data = {
  next: async () => {
    // On wasm a whole fit() runs in microtasks (its host reads resolve at once), so the event loop,
    // and with it the SIGINT handler, would never run: yield to it once per batch.
    await new Promise((resolve) => setImmediate(resolve));
    const h = hostBatches[cursor++ % hostBatches.length];
    return { images: tf.tensor4d(h.images, h.shape), captions: h.captions };
  },
  cursor: () => cursor,
  restore: (at) => {
    cursor = at;
  },
};
const captionLengths = hostBatches.map((h) => Math.max(...h.captions.map((x) => x.length)));

const describe =
  `stage-2 ETT step (semantic, arm ett, alpha ${c.alpha}, critic first, lr ${c.lr.semantic} warmup-cosine over ${o.steps} steps); ` +
  `quickstart model (VQ_TOKENIZER_TINY, LM d ${c.lm.hiddenSize} × ${c.lm.numLayers} layers, critic ndf ${c.gan.baseChannels}); ` +
  `images ${o.imageSize}×${o.imageSize} (${model.numVisual} visual tokens, glyph scale ${glyphScale}), batch ${o.batch}, ${o.batches} distinct batches cycled ` +
  `(longest captions ${captionLengths.join('/')} bytes); backend ${backendName}; node ${process.version}, ${os.cpus().length} CPUs`;
console.error(`soak: ${o.steps} steps, sample every ${o.every}, warm-up ${o.warmup} steps${gc ? ', full GC before each sample' : ''}`);
console.error(`soak: ${describe}`);

// ---------------------------------------------------------------- sampling

const MiB = 2 ** 20;
function wasmHeapBytes() {
  try {
    const heap = tf.backend()?.wasm?.HEAPU8;
    return heap ? heap.buffer.byteLength : null;
  } catch {
    return null;
  }
}

const cpuMs = (u) => (u.user + u.system) / 1000;
// Which build ran: the packages' dist files are loaded once at start, so a rebuild during the run does not change it.
const BUILD = {
  commit: (() => {
    try {
      return execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  })(),
  dist: Object.fromEntries(
    ['autoregressive-lm', 'backend', 'core', 'data', 'ettjs', 'losses', 'projector', 'trainer', 'vector-quantizer'].map((p) => {
      try {
        return [p, fs.statSync(new URL(`../packages/${p}/dist/index.js`, import.meta.url)).mtime.toISOString()];
      } catch {
        return [p, null];
      }
    }),
  ),
};
const samples = [];
const tensorCounts = new Map(); // numTensors after every step past the warm-up → how many steps
let interval = { n: 0, ms: 0, maxMs: 0, cpu: process.cpuUsage() };
let skipped = 0;
let lastStep = 0;
const started = performance.now();

function sample(step) {
  gc?.();
  const m = tf.memory();
  const p = process.memoryUsage();
  const s = {
    step,
    t: (performance.now() - started) / 1000,
    numTensors: m.numTensors,
    numDataBuffers: m.numDataBuffers,
    numBytes: m.numBytes,
    variables: Object.keys(tf.engine().state.registeredVariables).length,
    rss: p.rss,
    heapUsed: p.heapUsed,
    heapTotal: p.heapTotal,
    external: p.external,
    arrayBuffers: p.arrayBuffers,
    wasmHeap: wasmHeapBytes(),
    stepMs: interval.n ? interval.ms / interval.n : null,
    maxStepMs: interval.n ? interval.maxMs : null,
    // Process CPU time (user + system, all threads) per step over the interval: less load-dependent than stepMs.
    cpuMs: interval.n ? cpuMs(process.cpuUsage(interval.cpu)) / interval.n : null,
  };
  samples.push(s);
  interval = { n: 0, ms: 0, maxMs: 0, cpu: process.cpuUsage() };
  return s;
}

function onStep(r) {
  lastStep = r.step;
  interval.n += 1;
  interval.ms += r.stepMs;
  interval.maxMs = Math.max(interval.maxMs, r.stepMs);
  if (r.skipped) skipped += 1;
  if (r.step > o.warmup) tensorCounts.set(r.numTensors, (tensorCounts.get(r.numTensors) ?? 0) + 1);
  if (r.step % o.every === 0 || r.step === o.steps) {
    const s = sample(r.step);
    const eta = ((performance.now() - started) / 1000 / r.step) * (o.steps - r.step);
    console.error(
      `step ${String(r.step).padStart(String(o.steps).length)}/${o.steps}  ${s.stepMs.toFixed(0)} ms/step (cpu ${s.cpuMs.toFixed(0)})  tensors ${s.numTensors}  ` +
        `tensor ${(s.numBytes / MiB).toFixed(2)} MiB  rss ${(s.rss / MiB).toFixed(1)} MiB  heap ${(s.heapUsed / MiB).toFixed(1)} MiB  ` +
        `ext ${(s.external / MiB).toFixed(1)} MiB${s.wasmHeap !== null ? `  wasm ${(s.wasmHeap / MiB).toFixed(0)} MiB` : ''}  ` +
        `loss ${r.loss.total.toFixed(3)}  eta ${(eta / 60).toFixed(1)} min`,
    );
    if (o.json) writeJson(false);
  }
  if (o.heapSnapshots?.includes(r.step)) {
    // For finding what grows: diff two snapshots in Chrome DevTools (Memory → Comparison).
    gc?.();
    console.error(`wrote ${v8.writeHeapSnapshot(`soak-step${r.step}.heapsnapshot`)}`);
  }
  if (interrupted) {
    if (samples.at(-1).step !== r.step) sample(r.step);
    throw new Interrupted();
  }
}

// ---------------------------------------------------------------- summary and verdict

/** Least-squares slope of y over x, with its standard error (NaN below 3 points). */
function slope(xs, ys) {
  const n = xs.length;
  if (n < 2) return { slope: Number.NaN, se: Number.NaN };
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  if (sxx === 0) return { slope: Number.NaN, se: Number.NaN };
  const b = sxy / sxx;
  let sse = 0;
  for (let i = 0; i < n; i++) sse += (ys[i] - my - b * (xs[i] - mx)) ** 2;
  return { slope: b, se: n > 2 ? Math.sqrt(sse / (n - 2) / sxx) : Number.NaN };
}

/**
 * A second-half slope against its limit (per 1000 steps), with its noise: 'growing' when even the
 * slope minus two standard errors is over the limit, 'flat' when the slope plus two standard errors
 * is within it, 'unresolved' when the noise straddles the limit (no growth over it shown, none ruled
 * out). RSS is noisy (allocator and GC page behaviour: tens of MiB up and down), so its bare slope
 * could fail a flat run or pass a growing one by chance; heapUsed after a full GC is precise.
 */
function classify(row, limit, enough) {
  if (!enough || row === undefined || Number.isNaN(row.se)) return 'too few samples';
  if (row.slope - 2 * row.se > limit) return 'growing';
  return row.slope + 2 * row.se <= limit ? 'flat' : 'unresolved';
}

const SERIES = [
  ['numTensors', 'numTensors', 1, ''],
  ['numBytes', 'tensor bytes', MiB, 'MiB'],
  ['rss', 'RSS', MiB, 'MiB'],
  ['heapUsed', 'JS heap used', MiB, 'MiB'],
  ['external', 'external', MiB, 'MiB'],
  ['arrayBuffers', 'arrayBuffers', MiB, 'MiB'],
  ['wasmHeap', 'WASM heap', MiB, 'MiB'],
  ['variables', 'tf variables', 1, ''],
];

function summarize() {
  const trained = samples.filter((s) => s.step > 0);
  const last = trained.at(-1);
  const half = last ? last.step / 2 : 0;
  const second = trained.filter((s) => s.step >= half);
  const rows = [];
  for (const [key, label, unit, unitName] of SERIES) {
    if (trained.length === 0 || trained.some((s) => s[key] === null)) continue;
    const ys = trained.map((s) => s[key]);
    // KiB (or count) per 1000 steps over the second half of the run.
    const fit = slope(
      second.map((s) => s.step),
      second.map((s) => s[key]),
    );
    const scale = unit === 1 ? 1000 : 1000 / 1024;
    rows.push({
      key,
      label,
      unitName,
      start: samples[0][key] / unit,
      first: ys[0] / unit,
      last: ys.at(-1) / unit,
      max: Math.max(...ys) / unit,
      slope: fit.slope * scale,
      se: fit.se * scale,
      slopeUnit: unit === 1 ? 'per 1000 steps' : 'KiB per 1000 steps',
    });
  }
  const values = [...tensorCounts.keys()].sort((a, b) => a - b);
  const enough = second.length >= 3;
  const tensorsFlat = values.length === 1;
  const heap = classify(
    rows.find((r) => r.key === 'heapUsed'),
    o.maxHeapSlope,
    enough,
  );
  const rss = classify(
    rows.find((r) => r.key === 'rss'),
    o.maxRssSlope,
    enough,
  );
  // Fails on a numTensors change or on growth shown beyond the noise; passes unresolved RSS (reported).
  const flat = tensorsFlat && enough && heap !== 'growing' && rss !== 'growing';
  return {
    rows,
    tensorValues: Object.fromEntries(values.map((v) => [v, tensorCounts.get(v)])),
    tensorsFlat,
    heap,
    rss,
    enough,
    flat,
    secondHalf: second.length ? [second[0].step, second.at(-1).step] : null,
  };
}

function fmt(x, digits = 2) {
  return x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits);
}

function printSummary(sum) {
  const lines = [];
  lines.push('');
  lines.push(`ETT.js training memory soak: ${describe}`);
  const t = (performance.now() - started) / 1000;
  const timed = samples.filter((s) => s.stepMs !== null && s.step > o.warmup);
  const ms = timed.length ? timed.reduce((a, s) => a + s.stepMs, 0) / timed.length : Number.NaN;
  lines.push(
    `${lastStep} of ${o.steps} steps in ${(t / 60).toFixed(1)} min (${fmt(ms, 0)} ms/step after warm-up, Trainer stepMs)` +
      `${skipped ? `; ${skipped} step(s) skipped as non-finite` : ''}${interrupted ? '; INTERRUPTED' : ''}; ` +
      `samples every ${o.every} steps${gc ? ' after a full GC' : ''}; load average ${os.loadavg()[0].toFixed(1)} (1 min)`,
  );
  lines.push('');
  const head = ['series', 'step 0', 'first', 'last', 'max', '2nd-half slope ± 2 SE'];
  const body = sum.rows.map((r) => {
    const d = r.unitName ? 2 : 0;
    const u = r.unitName ? ` ${r.unitName}` : '';
    return [
      `${r.label}${u ? ` (${r.unitName})` : ''}`,
      fmt(r.start, d),
      fmt(r.first, d),
      fmt(r.last, d),
      fmt(r.max, d),
      `${fmt(r.slope, 1)} ± ${fmt(2 * r.se, 1)} ${r.slopeUnit}`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join(' | ')} |`;
  lines.push(line(head));
  lines.push(`|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of body) lines.push(line(r));
  lines.push('');
  lines.push(
    `step 0 = after building the model, before the first step; first = step ${samples[1]?.step ?? '–'}; ` +
      `slope = least squares over the samples of steps ${sum.secondHalf ? sum.secondHalf.join('–') : '–'}.`,
  );
  const vals = Object.entries(sum.tensorValues)
    .map(([v, n]) => `${v} (${n} steps)`)
    .join(', ');
  lines.push(
    `numTensors after every step past the warm-up (${o.warmup} steps): {${vals || 'no steps'}} → ${sum.tensorsFlat ? 'flat' : 'NOT FLAT'}`,
  );
  for (const [key, label, limit, state] of [
    ['heapUsed', 'JS heap', o.maxHeapSlope, sum.heap],
    ['rss', 'RSS', o.maxRssSlope, sum.rss],
  ]) {
    const r = sum.rows.find((x) => x.key === key);
    const says = {
      flat: 'flat (slope + 2 SE within the limit)',
      growing: 'GROWING (slope − 2 SE over the limit)',
      unresolved: `no growth over the limit shown, but the noise (± ${fmt(2 * r?.se, 0)}) is wider than the limit`,
      'too few samples': 'too few samples to tell',
    }[state];
    lines.push(
      `${label} slope over the second half: ${fmt(r?.slope, 1)} ± ${fmt(2 * r?.se, 1)} KiB per 1000 steps (limit ${limit}) → ${says}`,
    );
  }
  if (afterFit) {
    const at = samples.at(-1);
    lines.push(
      `after fit returned${gc ? ' and a full GC' : ''}: numTensors ${afterFit.numTensors}, tensor ${fmt(afterFit.numBytes / MiB)} MiB, ` +
        `JS heap ${fmt(afterFit.heapUsed / MiB)} MiB (${fmt((afterFit.heapUsed - at.heapUsed) / MiB)} vs the last sample), ` +
        `RSS ${fmt(afterFit.rss / MiB)} MiB (${fmt((afterFit.rss - at.rss) / MiB)})`,
    );
  }
  let verdict = sum.flat ? 'FLAT' : 'NOT FLAT';
  if (sum.flat && sum.rss === 'unresolved') verdict = 'FLAT (numTensors and JS heap; RSS within its noise)';
  if (!sum.flat && sum.tensorsFlat && !sum.enough) verdict = 'UNDECIDED (fewer than 3 samples in the second half)';
  lines.push(`verdict: ${verdict}${interrupted ? ' (interrupted run)' : ''}`);
  console.log(lines.join('\n'));
}

// ---------------------------------------------------------------- outputs

function writeAtomic(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function writeJson(final) {
  const sum = summarize();
  writeAtomic(
    o.json,
    `${JSON.stringify(
      {
        final,
        interrupted,
        options: o,
        config: describe,
        backend: backendName,
        stepsDone: lastStep,
        skipped,
        minutes: (performance.now() - started) / 60_000,
        build: BUILD,
        loadAverage: os.loadavg(),
        verdict: {
          flat: sum.flat,
          tensorsFlat: sum.tensorsFlat,
          heap: sum.heap,
          rss: sum.rss,
          numTensorsAfterWarmup: sum.tensorValues,
        },
        summary: sum.rows,
        afterFit,
        samples,
      },
      null,
      1,
    )}\n`,
  );
}

/** A self-contained SVG: one panel per series (numTensors, tensor MiB, RSS MiB, heap MiB) against the step, from the first sample. */
function svgPlot() {
  const series = [
    ['numTensors', 1, '#1f77b4'],
    ['tensor MiB', MiB, '#ff7f0e', 'numBytes'],
    ['RSS MiB', MiB, '#2ca02c', 'rss'],
    ['heapUsed MiB', MiB, '#d62728', 'heapUsed'],
  ];
  const W = 720;
  const PH = 150;
  const L = 70;
  const R = 20;
  const T = 36;
  const GAP = 34;
  const H = T + series.length * (PH + GAP) + 10;
  // From the first sample after step 0: the untrained baseline would flatten everything else.
  const pts = samples.filter((s) => s.step > 0);
  if (pts.length === 0) pts.push(...samples);
  const maxStep = Math.max(1, ...pts.map((s) => s.step));
  const x = (step) => L + ((W - L - R) * step) / maxStep;
  const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="16" font-size="13">${esc(`ETT.js training memory soak: ${lastStep} steps, batch ${o.batch}, ${o.imageSize}×${o.imageSize}, ${backendName}`)}</text>`,
  ];
  series.forEach(([name, unit, colour, key = name], i) => {
    const top = T + i * (PH + GAP);
    const ys = pts.map((s) => s[key] / unit);
    let lo = Math.min(...ys);
    let hi = Math.max(...ys);
    if (hi - lo < 1e-9) {
      lo -= 1;
      hi += 1;
    }
    const pad = (hi - lo) * 0.05;
    lo -= pad;
    hi += pad;
    const y = (v) => top + PH - (PH * (v - lo)) / (hi - lo);
    out.push(`<rect x="${L}" y="${top}" width="${W - L - R}" height="${PH}" fill="none" stroke="#999"/>`);
    out.push(`<text x="${L}" y="${top - 5}" font-weight="bold">${esc(name)}</text>`);
    for (const v of [lo + pad, (lo + hi) / 2, hi - pad]) {
      out.push(`<text x="${L - 5}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v, unit === 1 ? 0 : 2)}</text>`);
      out.push(`<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`);
    }
    for (const st of [0, maxStep / 2, maxStep]) {
      out.push(`<text x="${x(st).toFixed(1)}" y="${top + PH + 13}" text-anchor="middle">${Math.round(st)}</text>`);
    }
    const d = pts.map((s, j) => `${j ? 'L' : 'M'}${x(s.step).toFixed(1)},${y(s[key] / unit).toFixed(1)}`).join('');
    out.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="1.5"/>`);
    if (o.warmup > 0 && o.warmup < maxStep) {
      out.push(
        `<line x1="${x(o.warmup).toFixed(1)}" x2="${x(o.warmup).toFixed(1)}" y1="${top}" y2="${top + PH}" stroke="#bbb" stroke-dasharray="3,3"/>`,
      );
    }
  });
  out.push(`<text x="${W - R}" y="${H - 4}" text-anchor="end" fill="#666">step (dashed: end of warm-up)</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/**
 * Memory once `fit` has returned (or thrown) and its result is dropped (see `runFit`): the
 * optimizers are disposed and whatever `fit` kept per step (its `records`) is garbage. Heap that was
 * growing during the run and is gone here was held by `fit` itself.
 */
let afterFit = null;
function fitReturned() {
  gc?.();
  const m = tf.memory();
  const p = process.memoryUsage();
  afterFit = { numTensors: m.numTensors, numBytes: m.numBytes, rss: p.rss, heapUsed: p.heapUsed, external: p.external };
}

let finished = false;
function finish() {
  if (finished) return 0;
  finished = true;
  const sum = summarize();
  printSummary(sum);
  if (o.json) {
    writeJson(true);
    console.log(`wrote ${o.json}`);
  }
  if (o.svg) {
    writeAtomic(o.svg, svgPlot());
    console.log(`wrote ${o.svg}`);
  }
  return interrupted ? 130 : sum.flat ? 0 : 1;
}

// ---------------------------------------------------------------- run

class Interrupted extends Error {}
let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) {
    // A second Ctrl-C while a step is still running: write what there is and leave now.
    process.exit(finish());
  }
  interrupted = true;
  console.error('\nSIGINT: stopping after this step (Ctrl-C again to stop at once)');
});

const stage = semantic(model, { steps: o.steps, lr: c.lr.semantic, arm: 'ett', alpha: c.alpha });
const trainer = new Trainer({
  model,
  data,
  stages: [stage],
  progress: 'none',
  print: (l) => console.error(l),
  onStep,
  // The Trainer's own default unless given (`Infinity`: every step record, as before keepRecords).
  ...(o.keepRecords !== undefined ? { keepRecords: o.keepRecords } : {}),
});
sample(0);
/** `fit` in its own frame, so that nothing here still references its result when `fitReturned` measures. */
async function runFit() {
  await trainer.fit();
}
let code;
try {
  await runFit();
  fitReturned();
  code = finish();
} catch (e) {
  fitReturned();
  if (e instanceof Interrupted) code = finish();
  else {
    console.error(e);
    finish();
    code = 2;
  }
}
process.exit(code);
