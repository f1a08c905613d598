// Kernel-level profile of repeated steps that tells a step's own cost from this VM's stalls.
//
// On the shared 2-core VMs these benchmarks run on, the process is stopped for 0.1-1 s at random
// (the host preempts the VM; CPU time is inflated with wall time, so neither helps). A whole step of
// the stage-2 ETT workload is rarely stall-free, but each of its ~4 700 kernel calls usually is in
// some step: the steps run the same kernels in the same order, so the minimum over the steps of
// each call's time (and of each gap between calls) is that call's stall-free cost, and their sum
// estimates the stall-free step. It is a lower bound (every call at its luckiest); the best observed
// step is an upper bound.
//
// Used by run.mjs --profile (child mode): install() before the workload, mark() after each step,
// report() at the end. Wrapping adds about 1 µs per call.
import * as tf from '@tensorflow/tfjs-core';

const events = []; // [start ms, duration ms, label]
const marks = []; // event index at each step boundary
let inside = 0;

/** Wraps every kernel of the active backend (call after initBackend, before the workload). */
export function install() {
  for (const k of tf.getKernelsForBackend(tf.getBackend())) {
    const run = k.kernelFunc;
    const name = k.kernelName;
    k.kernelFunc = (args) => {
      // Kernels that run other kernels (fallbacks, tidy-based ones) count once, as the outer call.
      if (inside > 0) return run(args);
      inside++;
      const t0 = performance.now();
      try {
        return run(args);
      } finally {
        inside--;
        const shapes = Object.values(args.inputs)
          .filter((t) => t != null) // FusedConv2D's inputs hold undefined for parts it was not given
          .map((t) => `[${t.shape}]`)
          .join('');
        events.push([t0, performance.now() - t0, `${name} ${shapes}`]);
      }
    };
  }
}

/** Marks the end of one step (a Trainer step, or one run of an inference workload). */
export function mark() {
  marks.push(events.length);
}

/**
 * Over the steps after `skip`, with steps whose call sequence differs from the first kept step's
 * left out (counted in `stepsSkipped`):
 * - `stallFreeMs`: per call position the minimum duration and the minimum gap before it, summed: a
 *   lower bound on a stall-free step (every call at its luckiest);
 * - `clippedMs` / `clippedMedianMs`: per step, its wall time less every excess over those minima
 *   bigger than `clipMs` (2 ms: a stall; a kernel's own jitter is microseconds), the best and the
 *   median over the steps. It keeps what steps pay beyond the minima (cache misses, threads waking,
 *   the VM's sub-millisecond blips) and drops the stalls: where a run was stall-free, its wall time
 *   was within a few percent of the best clipped step. A pause of the process itself longer than
 *   `clipMs` (a major GC) is clipped too, so quote it with the best observed step;
 * - `byKernel`: summed minimum durations per kernel name, `callsByKernel` its calls per step;
 *   `top`: the 40 costliest call sites (kernel and input shapes) with their count per step.
 */
/** Sum and count of the gaps in each size class (µs bounds), to tell many small gaps from a few large ones. */
function gapHistogram(gaps) {
  const bounds = [2, 5, 10, 20, 50, 100, 500, Number.POSITIVE_INFINITY];
  const out = bounds.map((us) => ({ upToUs: us, count: 0, ms: 0 }));
  for (const g of gaps) {
    const bin = out.find((b) => g * 1000 <= b.upToUs);
    bin.count++;
    bin.ms += g;
  }
  return out.filter((b) => b.count > 0).map((b) => ({ ...b, upToUs: String(b.upToUs), ms: Math.round(b.ms * 10) / 10 }));
}

export function report(skip = 1, clipMs = 2) {
  const steps = [];
  for (let i = skip; i < marks.length; i++) steps.push(events.slice(i === 0 ? 0 : marks[i - 1], marks[i]));
  if (steps.length === 0 || steps[0].length === 0) return null;
  const labels = steps[0].map((e) => e[2]);
  const same = steps.filter((s) => s.length === labels.length && s.every((e, j) => e[2] === labels[j]));
  const gap = (s, j) => (j === 0 ? 0 : s[j][0] - s[j - 1][0] - s[j - 1][1]);
  const minKernel = labels.map((_, j) => Math.min(...same.map((s) => s[j][1])));
  const minGap = labels.map((_, j) => Math.min(...same.map((s) => gap(s, j))));
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const wall = (s) => s.at(-1)[0] + s.at(-1)[1] - s[0][0];
  const clipped = same.map((s) => {
    let stalls = 0;
    for (let j = 0; j < labels.length; j++) {
      for (const excess of [s[j][1] - minKernel[j], gap(s, j) - minGap[j]]) if (excess > clipMs) stalls += excess;
    }
    return wall(s) - stalls;
  });
  const bySite = new Map();
  const byKernel = new Map();
  const callsByKernel = new Map();
  labels.forEach((label, j) => {
    const site = bySite.get(label) ?? { calls: 0, ms: 0 };
    site.calls++;
    site.ms += minKernel[j];
    bySite.set(label, site);
    const name = label.split(' ')[0];
    byKernel.set(name, (byKernel.get(name) ?? 0) + minKernel[j]);
    callsByKernel.set(name, (callsByKernel.get(name) ?? 0) + 1);
  });
  const round = (x) => Math.round(x * 10) / 10;
  const median = (xs) => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length % 2 === 1 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const kernelMs = sum(minKernel);
  const betweenMs = sum(minGap);
  return {
    stepsUsed: same.length,
    stepsSkipped: steps.length - same.length,
    callsPerStep: labels.length,
    stallFreeMs: round(kernelMs + betweenMs),
    clippedMs: round(Math.min(...clipped)),
    clippedMedianMs: round(median(clipped)),
    kernelMs: round(kernelMs),
    betweenMs: round(betweenMs),
    // first call to last call of a step: less than the Trainer's stepMs by what precedes the first kernel
    bestObservedMs: round(Math.min(...same.map(wall))),
    byKernel: Object.fromEntries(
      [...byKernel]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 20)
        .map(([n, v]) => [n, round(v)]),
    ),
    callsByKernel: Object.fromEntries([...callsByKernel].sort((a, b) => b[1] - a[1])),
    top: [...bySite]
      .sort((a, b) => b[1].ms - a[1].ms)
      .slice(0, Number(process.env.KP_TOP ?? 40))
      .map(([site, { calls, ms }]) => ({
        site: site.length > 100 ? `${site.slice(0, 97)}...` : site,
        calls,
        ms: Math.round(ms * 100) / 100,
      })),
    // Where the time between kernels goes: the minimum gaps by size, and the largest with their neighbours.
    gapsBySize: gapHistogram(minGap),
    topGaps: minGap
      .map((ms, j) => ({
        ms: Math.round(ms * 1000) / 1000,
        after: labels[j - 1]?.slice(0, 80) ?? '(step start)',
        before: labels[j].slice(0, 80),
      }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 25),
  };
}
