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
 * The stall-free estimate over the steps after `skip`: per call position, the minimum duration and
 * the minimum gap before it, summed; plus per kernel name the summed minimum durations. Steps whose
 * call sequence differs from the first kept step's are left out (counted in `stepsUsed`).
 */
export function report(skip = 1) {
  const steps = [];
  for (let i = skip; i < marks.length; i++) steps.push(events.slice(i === 0 ? 0 : marks[i - 1], marks[i]));
  if (steps.length === 0 || steps[0].length === 0) return null;
  const labels = steps[0].map((e) => e[2]);
  const same = steps.filter((s) => s.length === labels.length && s.every((e, j) => e[2] === labels[j]));
  const byKernel = new Map();
  let kernelMs = 0;
  let betweenMs = 0;
  for (let j = 0; j < labels.length; j++) {
    let k = Number.POSITIVE_INFINITY;
    let g = Number.POSITIVE_INFINITY;
    for (const s of same) {
      k = Math.min(k, s[j][1]);
      if (j > 0) g = Math.min(g, s[j][0] - s[j - 1][0] - s[j - 1][1]);
    }
    kernelMs += k;
    if (j > 0) betweenMs += g;
    const name = labels[j].split(' ')[0];
    byKernel.set(name, (byKernel.get(name) ?? 0) + k);
  }
  const walls = same.map((s) => s.at(-1)[0] + s.at(-1)[1] - s[0][0]);
  const round = (x) => Math.round(x * 10) / 10;
  return {
    stepsUsed: same.length,
    stepsSkipped: steps.length - same.length,
    callsPerStep: labels.length,
    stallFreeMs: round(kernelMs + betweenMs),
    kernelMs: round(kernelMs),
    betweenMs: round(betweenMs),
    // first call to last call of a step: less than the Trainer's stepMs by what precedes the first kernel
    bestObservedMs: round(Math.min(...walls)),
    byKernel: Object.fromEntries(
      [...byKernel]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 20)
        .map(([n, v]) => [n, round(v)]),
    ),
  };
}
