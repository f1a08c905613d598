// Micro-benchmark of the training backends @ettjs/backend sets up: GFLOP/s for matmul, batched
// (attention) matmul, conv2d forward and forward+backward, and a transformer block forward and
// forward+backward. Each backend runs in its own child process (WASM threads are fixed at start-up).
//
//   npm run build -w @ettjs/backend && node bench/backend.mjs            # wasm (all cores), wasm 1 thread
//   node bench/backend.mjs --backends wasm,wasm:1,wasm:2:off,cpu          # backend[:threads[:off = no native kernels]]; cpu is very slow
//   node bench/backend.mjs --backends webgpu,wasm                         # WebGPU (needs the optional peers webgpu and @tensorflow/tfjs-backend-webgpu)
//
// FLOP counts: matmul 2mnk; conv 2·B·H·W·Cin·Cout·k²; transformer block forward B·T·(24d² + 4Td),
// forward+backward counted as 3× forward (MEASUREMENTS.md §3–5).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@ettjs/backend';
import * as tf from '@tensorflow/tfjs-core';

const args = process.argv.slice(2);

function arg(name, fallback) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
}

/**
 * Median and best ms of `fn` (which returns a tensor or tensors), after warm-ups; stops early past
 * `budgetMs`. The best run is printed too: on a shared machine the median mostly measures the load.
 */
async function time(fn, { reps = 7, warmup = 2, budgetMs = 20000 } = {}) {
  const run = async () => {
    const out = fn();
    const list = Array.isArray(out) ? out : [out];
    await Promise.all(list.map((t) => t.data()));
    tf.dispose(list);
  };
  const start = performance.now();
  for (let i = 0; i < warmup; i++) {
    await run();
    if (performance.now() - start > budgetMs) break;
  }
  const ts = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    ts.push(performance.now() - t0);
    if (performance.now() - start > budgetMs) break;
  }
  ts.sort((a, b) => a - b);
  return { median: ts[Math.floor(ts.length / 2)], best: ts[0] };
}

function transformerBlock(p, x, B, T, d, h) {
  const hd = d / h;
  const norm = (t) => {
    const { mean, variance } = tf.moments(t, -1, true);
    return tf.div(tf.sub(t, mean), tf.sqrt(tf.add(variance, 1e-5)));
  };
  const heads = (t) => tf.transpose(tf.reshape(t, [B, T, h, hd]), [0, 2, 1, 3]); // [B, h, T, hd]
  const [q, k, v] = tf.split(tf.matMul(norm(x), p.wqkv), 3, 1); // 2-D split: rank-5 slices are slow on wasm
  const mask = tf.linalg.bandPart(tf.ones([T, T]), -1, 0);
  const scores = tf.div(tf.matMul(heads(q), heads(k), false, true), Math.sqrt(hd)); // [B, h, T, T]
  const masked = tf.add(scores, tf.mul(tf.sub(1, mask), -1e9));
  const att = tf.reshape(tf.transpose(tf.matMul(tf.softmax(masked), heads(v)), [0, 2, 1, 3]), [B * T, d]);
  const x1 = tf.add(x, tf.matMul(att, p.wo));
  const u = tf.matMul(norm(x1), p.w1);
  const gelu = tf.mul(
    tf.mul(u, 0.5),
    tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(u, tf.mul(0.044715, tf.mul(u, tf.mul(u, u))))))),
  );
  return tf.add(x1, tf.matMul(gelu, p.w2));
}

async function child(backend, threads, native) {
  const report = await initBackend({ backend, ...(threads ? { threads: Number(threads) } : {}), native: native !== 'off' });
  const rows = [];
  const add = async (name, gflop, fn, opts) => {
    const { median, best } = await time(fn, opts);
    rows.push({ name, ms: median, gflops: gflop / (median / 1000), bestGflops: gflop / (best / 1000) });
  };
  // A software WebGPU adapter (llvmpipe) is about as slow as cpu: fewer runs.
  const slow = backend === 'cpu' || report.webgpu?.software === true;
  for (const n of [512, 1024]) {
    const a = tf.randomNormal([n, n]);
    const b = tf.randomNormal([n, n]);
    await add(`matmul ${n}³`, (2 * n ** 3) / 1e9, () => tf.matMul(a, b), slow ? { reps: 3, warmup: 1 } : undefined);
    tf.dispose([a, b]);
  }
  {
    // Attention scores QKᵀ and PV for B 8 × 4 heads, T 128, head dim 64.
    const q = tf.randomNormal([32, 128, 64]);
    const k = tf.randomNormal([32, 128, 64]);
    const pm = tf.randomNormal([32, 128, 128]);
    await add('batched matmul QKᵀ 32×128×64', (2 * 32 * 128 * 128 * 64) / 1e9, () => tf.matMul(q, k, false, true));
    await add('batched matmul PV 32×128×128', (2 * 32 * 128 * 128 * 64) / 1e9, () => tf.matMul(pm, q));
    tf.dispose([q, k, pm]);
  }
  {
    const x = tf.randomNormal([8, 32, 32, 64]);
    const w = tf.randomNormal([3, 3, 64, 64]);
    const gf = (2 * 8 * 32 * 32 * 64 * 64 * 9) / 1e9;
    await add('conv2d fwd b8 32²×64→64 3×3', gf, () => tf.conv2d(x, w, 1, 'same'), slow ? { reps: 3, warmup: 1 } : undefined);
    if (!slow || args.includes('--slow')) {
      await add('conv2d fwd+bwd (dx, dW)', 3 * gf, () => {
        const dy = tf.ones([8, 32, 32, 64]);
        const g = tf.grads((a, b) => tf.sum(tf.mul(tf.conv2d(a, b, 1, 'same'), dy)))([x, w]);
        dy.dispose();
        return g;
      });
    }
    tf.dispose([x, w]);
  }
  {
    const [B, T, d, h] = [8, 128, 256, 4];
    const p = {
      wqkv: tf.variable(tf.mul(tf.randomNormal([d, 3 * d]), 0.05)),
      wo: tf.variable(tf.mul(tf.randomNormal([d, d]), 0.05)),
      w1: tf.variable(tf.mul(tf.randomNormal([d, 4 * d]), 0.05)),
      w2: tf.variable(tf.mul(tf.randomNormal([4 * d, d]), 0.05)),
    };
    const x = tf.randomNormal([B * T, d]);
    const gf = (B * T * (24 * d * d + 4 * T * d)) / 1e9;
    await add(
      'xformer block fwd (d256 h4 T128 B8)',
      gf,
      () => tf.tidy(() => transformerBlock(p, x, B, T, d, h)),
      slow ? { reps: 3, warmup: 1 } : undefined,
    );
    await add(
      'xformer block fwd+bwd',
      3 * gf,
      () => {
        const { value, grads } = tf.variableGrads(() => tf.mean(transformerBlock(p, x, B, T, d, h)), Object.values(p));
        return [value, ...Object.values(grads)];
      },
      slow ? { reps: 3, warmup: 1 } : undefined,
    );
    tf.dispose([x, ...Object.values(p)]);
  }
  process.stdout.write(`${JSON.stringify({ label: label(report), report, rows })}\n`);
  process.exit(0); // Dawn's instance would keep a webgpu child alive
}

function label(report) {
  if (report.webgpu) return `webgpu ${report.webgpu.name.slice(0, 18)}${report.webgpu.software ? ' (sw)' : ''}`;
  return `${report.backend} ${report.threads ?? ''}T${report.native?.loaded ? ` + native ${report.native.threads}T` : ''}`.trim();
}

async function main() {
  const configs = arg('--backends', 'wasm,wasm:1,wasm:2:off').split(',');
  const results = [];
  for (const c of configs) {
    const [backend, threads, native] = c.split(':');
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', backend, threads ?? '', native ?? '', ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 1 << 24,
    });
    const line = r.stdout.trim().split('\n').at(-1);
    if (r.status !== 0 || !line?.startsWith('{')) {
      console.error(`${c}: failed (exit ${r.status})`);
      continue;
    }
    results.push(JSON.parse(line));
  }
  if (results.length === 0) process.exit(1);
  const names = results[0].rows.map((r) => r.name);
  const head = ['workload'.padEnd(36), ...results.map((r) => r.label.padStart(28))].join(' ');
  const load = (await import('node:os')).loadavg()[0].toFixed(1);
  console.log(`tfjs ${tf.version_core}, node ${process.version}, load average ${load}; median ms (median GFLOP/s) / best-run GFLOP/s`);
  console.log(head);
  for (const name of names) {
    const cells = results.map((r) => {
      const row = r.rows.find((x) => x.name === name);
      return (row ? `${row.ms.toFixed(1)} ms (${row.gflops.toFixed(1)}) / ${row.bestGflops.toFixed(1)}` : '–').padStart(28);
    });
    console.log([name.padEnd(36), ...cells].join(' '));
  }
  for (const r of results) if (r.report.warnings.length) console.log(`${r.label}: ${r.report.warnings.join(' ')}`);
}

if (args[0] === '--child') await child(args[1], args[2], args[3]);
else await main();
