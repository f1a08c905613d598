import '@tensorflow/tfjs-backend-cpu';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { type GpuInfo, detectGpu } from './gpu';
import { gradientsRegistered } from './gradients';
import { type NativeStatus, loadNative, nativeOffByEnv, nativeStatus } from './native/load';
import { registerWasmTrainingKernels } from './wasm-kernels/index';
import { installWasmThreadsShim, afterWasmStart, withLogicalCoresAtLeast } from './wasm-threads';
import { type WebGpuAdapterInfo, findAdapter } from './webgpu/adapter';
import { registerWebGpuTrainingKernels } from './webgpu/kernels';
import { fastWebGpuUploads, guardWebGpuReads, installNavigatorGpu } from './webgpu/setup';

export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];

/** Loads an optional package by name; resolves `null` when it is not installed. */
export type ModuleLoader = (specifier: string) => Promise<unknown | null>;

export interface InitBackendOptions {
  /**
   * The backend to use. Defaults to the ETT_BACKEND variable, else automatic: tfjs-node-gpu on a GPU →
   * webgpu on a hardware adapter → tfjs-node → wasm → cpu. Asked for by name, webgpu also takes a
   * software adapter (llvmpipe, SwiftShader) and warns that it is one.
   */
  backend?: BackendName;
  /**
   * Threads. Defaults to ETT_WASM_THREADS, else os.availableParallelism(). With the native kernels
   * loaded, they get this many and WASM runs single-threaded unless threads were set explicitly;
   * without them, WASM runs this many (1 uses the single-threaded SIMD build).
   */
  threads?: number;
  /**
   * On wasm, run matmuls and convolutions on the native AVX2/AVX-512 kernels shipped in this package
   * (linux-x64; 3-5x the GEMM speed of WASM SIMD). Defaults to true unless ETT_NATIVE=0. Where they
   * cannot load (other platform, CPU without AVX2+FMA) the WASM kernels run and the report says why.
   */
  native?: boolean;
  /** Where ETT_BACKEND / ETT_WASM_THREADS / ETT_NATIVE / ETT_WEBGPU_FLAGS / CUDA_VISIBLE_DEVICES are read. Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Loads @tensorflow/tfjs-node(-gpu), webgpu and @tensorflow/tfjs-backend-webgpu. Defaults to a guarded dynamic import; inject one to test or to supply your own build. */
  loadModule?: ModuleLoader;
  /** Probes for an NVIDIA GPU. Defaults to {@link detectGpu}. */
  detectGpu?: () => GpuInfo;
}

/** One candidate initBackend looked at, and what happened. */
export interface BackendAttempt {
  candidate: string;
  outcome: 'chosen' | 'skipped' | 'failed';
  detail: string;
}

/** What initBackend chose and why. `backend` is verified to be tf.getBackend() when returned. */
export interface BackendReport {
  backend: BackendName;
  /** The npm package that provides it. */
  package: string;
  /** That package's version. */
  version: string;
  /** Where the math runs. 'cpu' for tfjs-node-gpu that could not use the GPU, and for a software WebGPU adapter. */
  device: 'gpu' | 'cpu';
  /** Worker threads (wasm: XNNPACK's pool size as the backend reports it; cpu: 1; tensorflow: null, libtensorflow decides). */
  threads: number | null;
  /** WASM SIMD (null off wasm). */
  simd: boolean | null;
  /** Who picked the backend. */
  source: 'option' | 'ETT_BACKEND' | 'auto';
  /** Why this backend, in one sentence. */
  reason: string;
  /** Every candidate looked at, in order. */
  attempts: BackendAttempt[];
  /** Things that work but not as well as they could (e.g. tfjs-node-gpu running on CPU). */
  warnings: string[];
  /** Kernels @ettjs/backend registered for this backend (wasm and webgpu). */
  patchedKernels: string[];
  /** The WebGPU adapter (null off webgpu). */
  webgpu: WebGpuAdapterInfo | null;
  /** The native kernels behind matmul and conv on wasm: loaded or why not (null off wasm). */
  native: NativeStatus | null;
  /** The GPU probe, when one ran. */
  gpu: GpuInfo | null;
}

/** initBackend could not give the backend that was asked for. */
export class BackendInitError extends Error {
  readonly attempts: BackendAttempt[];
  constructor(message: string, attempts: BackendAttempt[] = []) {
    const tried = attempts.map((a) => `\n  - ${a.candidate}: ${a.outcome} (${a.detail})`).join('');
    super(message + tried);
    this.name = 'BackendInitError';
    this.attempts = attempts;
  }
}

const NODE_GPU = '@tensorflow/tfjs-node-gpu';
const NODE_CPU = '@tensorflow/tfjs-node';
export const CUDA_NOTE =
  '@tensorflow/tfjs-node-gpu 4.22 is built against CUDA 11.2 and cuDNN 8.1; with other CUDA/cuDNN versions libtensorflow cannot load its GPU kernels and silently runs on the CPU';

function isNotInstalled(err: unknown, specifier: string): boolean {
  const e = err as { code?: string; message?: string };
  const msg = String(e?.message ?? err);
  const missing =
    e?.code === 'ERR_MODULE_NOT_FOUND' ||
    e?.code === 'MODULE_NOT_FOUND' ||
    /Cannot find (module|package)|Failed to (load|resolve)|Could not resolve/.test(msg);
  // A missing dependency *inside* an installed package is a broken install, not an absent one.
  return missing && msg.includes(specifier) && !msg.includes(`${specifier}/`);
}

/** The default loader: a dynamic import (a variable specifier, so no bundler tries to resolve it). */
export const importOptional: ModuleLoader = async (specifier) => {
  try {
    return await import(/* @vite-ignore */ specifier);
  } catch (err) {
    if (isNotInstalled(err, specifier)) return null;
    throw err;
  }
};

/**
 * setBackend, then check that tfjs really runs there. A failed setBackend returns false but leaves
 * tfjs pointing at the failed name with no instance, so the next op silently initialises whichever
 * registered backend has the highest priority: on failure we put the previous backend back.
 */
async function activate(name: string): Promise<string | null> {
  const engine = tf.engine();
  const previous = engine.backendName as string | null;
  const problem = await tryActivate(name);
  if (problem != null && previous != null && previous !== name && engine.registry[previous] != null) await tf.setBackend(previous);
  return problem;
}

async function tryActivate(name: string): Promise<string | null> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (err) {
    return `setBackend('${name}') threw: ${(err as Error).message}`;
  }
  const engine = tf.engine() as unknown as { backendInstance: tf.KernelBackend | null; registry: Record<string, tf.KernelBackend> };
  if (!ok) return `setBackend('${name}') returned false`;
  if (tf.getBackend() !== name || engine.backendInstance == null || engine.backendInstance !== engine.registry[name]) {
    return `setBackend('${name}') returned true but the active backend is '${tf.getBackend()}'`;
  }
  try {
    const sum = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)));
    const [v] = await sum.data();
    sum.dispose();
    if (v !== 3) return `'${name}' computed 1 + 2 = ${v}`;
  } catch (err) {
    return `'${name}' failed a 1 + 2 smoke test: ${(err as Error).message}`;
  }
  return null;
}

interface Plan {
  backend: BackendName | 'auto';
  source: BackendReport['source'];
  threads: number;
  threadsExplicit: boolean;
}

function plan(options: InitBackendOptions, env: Record<string, string | undefined>): Plan {
  let backend: Plan['backend'] = 'auto';
  let source: Plan['source'] = 'auto';
  if (options.backend != null) {
    if (!BACKEND_NAMES.includes(options.backend)) {
      throw new BackendInitError(
        `initBackend: backend must be one of ${BACKEND_NAMES.join(' | ')}, got ${JSON.stringify(options.backend)}.`,
      );
    }
    backend = options.backend;
    source = 'option';
  } else if (env['ETT_BACKEND'] != null && env['ETT_BACKEND'].trim() !== '') {
    const v = env['ETT_BACKEND'].trim().toLowerCase();
    if (!BACKEND_NAMES.includes(v as BackendName)) {
      throw new BackendInitError(
        `ETT_BACKEND must be one of ${BACKEND_NAMES.join(' | ')}, got ${JSON.stringify(env['ETT_BACKEND'])}. Unset it to choose automatically.`,
      );
    }
    backend = v as BackendName;
    source = 'ETT_BACKEND';
  }
  let threads = os.availableParallelism?.() ?? os.cpus().length;
  let threadsExplicit = false;
  if (options.threads != null) {
    if (!Number.isInteger(options.threads) || options.threads < 1) {
      throw new BackendInitError(`initBackend: threads must be a positive integer, got ${options.threads}.`);
    }
    threads = options.threads;
    threadsExplicit = true;
  } else if (env['ETT_WASM_THREADS'] != null && env['ETT_WASM_THREADS'].trim() !== '') {
    const n = Number(env['ETT_WASM_THREADS']);
    if (!Number.isInteger(n) || n < 1) {
      throw new BackendInitError(`ETT_WASM_THREADS must be a positive integer, got ${JSON.stringify(env['ETT_WASM_THREADS'])}.`);
    }
    threads = n;
    threadsExplicit = true;
  }
  return { backend, source, threads: Math.max(1, threads), threadsExplicit };
}

type Chosen = Omit<BackendReport, 'source' | 'attempts' | 'gpu'>;

async function tryNative(specifier: string, load: ModuleLoader, attempts: BackendAttempt[], gpu: GpuInfo | null): Promise<Chosen | null> {
  let mod: unknown;
  try {
    mod = await load(specifier);
  } catch (err) {
    attempts.push({ candidate: specifier, outcome: 'failed', detail: `installed but failed to load: ${(err as Error).message}` });
    return null;
  }
  if (mod == null) {
    attempts.push({ candidate: specifier, outcome: 'skipped', detail: 'not installed' });
    return null;
  }
  const problem = await activate('tensorflow');
  if (problem != null) {
    attempts.push({ candidate: specifier, outcome: 'failed', detail: problem });
    return null;
  }
  const instance = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
  const onGpu = instance.isUsingGpuDevice === true;
  const warnings: string[] = [];
  if (specifier === NODE_GPU && !onGpu) {
    const libs =
      gpu == null
        ? ''
        : ` (libcudart.so.11.0 ${gpu.cuda11 ? 'found' : gpu.cuda11 === false ? 'missing' : 'unchecked'}, libcudnn.so.8 ${gpu.cudnn8 ? 'found' : gpu.cudnn8 === false ? 'missing' : 'unchecked'})`;
    warnings.push(`${specifier} loaded but TensorFlow is not using the GPU: it fell back to CPU. ${CUDA_NOTE}${libs}.`);
  }
  const version = (mod as { version?: Record<string, string> }).version?.['tfjs-node'] ?? tf.version_core;
  attempts.push({ candidate: specifier, outcome: 'chosen', detail: onGpu ? 'libtensorflow on the GPU' : 'libtensorflow on the CPU' });
  return {
    backend: 'tensorflow',
    package: specifier,
    version,
    device: onGpu ? 'gpu' : 'cpu',
    threads: null,
    simd: null,
    reason: '',
    warnings,
    patchedKernels: [],
    native: null,
    webgpu: null,
  };
}

/**
 * WebGPU through Dawn (the `webgpu` package) and @tensorflow/tfjs-backend-webgpu. `hardwareOnly`
 * (the automatic choice) skips software adapters, which are slower than wasm.
 */
async function tryWebGpu(
  load: ModuleLoader,
  env: Record<string, string | undefined>,
  attempts: BackendAttempt[],
  hardwareOnly: boolean,
): Promise<Chosen | null> {
  const registry = tf.engine().registry as Record<string, unknown>;
  let found: Awaited<ReturnType<typeof findAdapter>>;
  try {
    found = await findAdapter(load, env, { hardwareOnly });
  } catch (err) {
    attempts.push({
      candidate: 'webgpu',
      outcome: 'failed',
      detail: `the webgpu package is installed but failed to load: ${(err as Error).message}`,
    });
    return null;
  }
  if (found.dawn == null) {
    const detail = found.tried.length > 0 ? found.tried.join('; ') : 'the optional peer `webgpu` is not installed';
    attempts.push({ candidate: 'webgpu', outcome: 'skipped', detail });
    return null;
  }
  if (found.found == null) {
    attempts.push({ candidate: 'webgpu', outcome: 'skipped', detail: `no WebGPU adapter (${found.tried.join('; ')})` });
    return null;
  }
  const { info } = found.found;
  if (hardwareOnly && info.software) {
    attempts.push({
      candidate: 'webgpu',
      outcome: 'skipped',
      detail: `only a software adapter (${info.name}), slower than wasm; ask for 'webgpu' by name to use it`,
    });
    return null;
  }
  if (registry['webgpu'] == null) installNavigatorGpu(found.dawn, found.found);
  let mod: unknown;
  try {
    mod = await load('@tensorflow/tfjs-backend-webgpu');
  } catch (err) {
    attempts.push({
      candidate: 'webgpu',
      outcome: 'failed',
      detail: `@tensorflow/tfjs-backend-webgpu failed to load: ${(err as Error).message}`,
    });
    return null;
  }
  if (mod == null) {
    attempts.push({
      candidate: 'webgpu',
      outcome: 'skipped',
      detail: `adapter ${info.name}, but @tensorflow/tfjs-backend-webgpu is not installed`,
    });
    return null;
  }
  if (tf.findBackendFactory('webgpu') == null) {
    attempts.push({
      candidate: 'webgpu',
      outcome: 'failed',
      detail:
        '@tensorflow/tfjs-backend-webgpu was imported before initBackend set up navigator.gpu, so it did not register; let initBackend load it',
    });
    return null;
  }
  const patchedKernels = registerWebGpuTrainingKernels();
  const problem = await activate('webgpu');
  if (problem != null) {
    attempts.push({ candidate: 'webgpu', outcome: 'failed', detail: problem });
    return null;
  }
  guardWebGpuReads(tf.backend());
  fastWebGpuUploads(tf.backend());
  const warnings = info.software
    ? [`WebGPU runs on a software adapter (${info.name}): correct but slower than wasm; use it to check the GPU path, not to train.`]
    : [];
  attempts.push({
    candidate: 'webgpu',
    outcome: 'chosen',
    detail: `${info.name} via Dawn ${info.dawnFlags.join(' ') || 'default backend'}, ${info.featureLevel}`,
  });
  return {
    backend: 'webgpu',
    package: '@tensorflow/tfjs-backend-webgpu',
    version: (mod as { version_webgpu?: string }).version_webgpu ?? tf.version_core,
    device: info.software ? 'cpu' : 'gpu',
    threads: null,
    simd: null,
    reason: '',
    warnings,
    patchedKernels,
    native: null,
    webgpu: info,
  };
}

/** Whether the native kernels are wanted: the option, else ETT_NATIVE (off: 0 / false / off), else yes. */
function native(options: InitBackendOptions, env: Record<string, string | undefined>): boolean {
  return options.native ?? !nativeOffByEnv(env);
}

/** Loads the native kernels unless turned off, with a pool of `p.threads` (ETT_NATIVE_THREADS overrides). */
function setUpNative(p: Plan, options: InitBackendOptions, env: Record<string, string | undefined>): NativeStatus {
  if (!native(options, env)) {
    return {
      loaded: false,
      isa: null,
      threads: null,
      detail: options.native === false ? 'turned off (native: false)' : 'disabled by ETT_NATIVE',
    };
  }
  const { addon } = loadNative(env);
  if (addon != null && !(Number(env['ETT_NATIVE_THREADS']) >= 1)) addon.setThreads(p.threads);
  return nativeStatus();
}

async function tryWasm(
  p: Plan,
  options: InitBackendOptions,
  env: Record<string, string | undefined>,
  attempts: BackendAttempt[],
): Promise<Chosen | null> {
  const warnings: string[] = [];
  // With the native kernels doing matmul and conv on their own pool of `p.threads`, the WASM side
  // runs single-threaded unless threads were asked for: it keeps only elementwise work, where
  // waking a worker pool per op costs more than it saves (3-10x slower on a busy 2-core machine).
  const nativeWanted = native(options, env);
  const w: Plan = !p.threadsExplicit && nativeWanted && loadNative(env).addon != null ? { ...p, threads: 1 } : p;
  // The shim must be in place before the backend initialises (it patches how Emscripten starts
  // workers); the module itself is loaded lazily so that cpu-only users never pay for it.
  if (w.threads > 1) installWasmThreadsShim();
  let wasm: typeof import('@tensorflow/tfjs-backend-wasm');
  try {
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch (err) {
    attempts.push({
      candidate: 'wasm',
      outcome: 'failed',
      detail: `could not load @tensorflow/tfjs-backend-wasm: ${(err as Error).message}`,
    });
    return null;
  }
  const nativeReport = setUpNative(p, options, env);
  const patchedKernels = registerWasmTrainingKernels({ native: nativeReport.loaded });
  const alreadyRunning = (tf.engine().registry as Record<string, unknown>)['wasm'] != null;
  if (!alreadyRunning) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', w.threads > 1);
    wasm.setThreadsCount(w.threads);
    let problem = await withLogicalCoresAtLeast(2 * w.threads, () => activate('wasm'));
    afterWasmStart();
    if (problem != null && w.threads > 1) {
      attempts.push({ candidate: `wasm (${w.threads} threads)`, outcome: 'failed', detail: problem });
      if (w.threadsExplicit) return null;
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
      wasm.setThreadsCount(1);
      problem = await activate('wasm');
      if (problem == null) warnings.push(`WASM threads failed to start (${attempts.at(-1)!.detail}); running single-threaded.`);
    }
    if (problem != null) {
      attempts.push({ candidate: 'wasm', outcome: 'failed', detail: problem });
      return null;
    }
  } else {
    const problem = await activate('wasm');
    if (problem != null) {
      attempts.push({ candidate: 'wasm', outcome: 'failed', detail: problem });
      return null;
    }
  }
  const threads = wasm.getThreadsCount();
  if (threads !== w.threads) {
    const msg = alreadyRunning
      ? `the wasm backend was already started with ${threads} thread(s) in this process; restart the process to get ${w.threads}`
      : `asked for ${w.threads} WASM threads, the backend reports ${threads}`;
    if (w.threadsExplicit) {
      attempts.push({ candidate: 'wasm', outcome: 'failed', detail: msg });
      return null;
    }
    if (!warnings.some((w) => w.startsWith('WASM threads failed'))) warnings.push(`${msg}.`);
  }
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const nativeNote = nativeReport.loaded
    ? `, native ${nativeReport.isa} kernels (${nativeReport.threads} threads)`
    : `, no native kernels (${nativeReport.detail})`;
  attempts.push({ candidate: 'wasm', outcome: 'chosen', detail: `${threads} thread(s), SIMD ${simd ? 'on' : 'off'}${nativeNote}` });
  return {
    backend: 'wasm',
    package: '@tensorflow/tfjs-backend-wasm',
    version: wasm.version_wasm,
    device: 'cpu',
    threads,
    simd,
    reason: '',
    warnings,
    patchedKernels,
    native: nativeReport,
    webgpu: null,
  };
}

async function tryCpu(attempts: BackendAttempt[]): Promise<Chosen | null> {
  const problem = await activate('cpu');
  if (problem != null) {
    attempts.push({ candidate: 'cpu', outcome: 'failed', detail: problem });
    return null;
  }
  attempts.push({ candidate: 'cpu', outcome: 'chosen', detail: 'pure JavaScript' });
  const { version_cpu } = await import('@tensorflow/tfjs-backend-cpu');
  return {
    backend: 'cpu',
    package: '@tensorflow/tfjs-backend-cpu',
    version: version_cpu,
    device: 'cpu',
    threads: 1,
    simd: null,
    reason: '',
    warnings: ['The cpu backend is 200-5000x slower than PyTorch for training: use it for tests only.'],
    patchedKernels: [],
    native: null,
    webgpu: null,
  };
}

async function choose(p: Plan, options: InitBackendOptions, env: Record<string, string | undefined>): Promise<BackendReport> {
  const attempts: BackendAttempt[] = [];
  const load = options.loadModule ?? importOptional;
  const probe = options.detectGpu ?? (() => detectGpu(env));
  let gpu: GpuInfo | null = null;
  let result: Chosen | null = null;
  let reason = '';

  if (p.backend === 'tensorflow' || p.backend === 'auto') {
    gpu = probe();
    if (gpu.visible) {
      result = await tryNative(NODE_GPU, load, attempts, gpu);
    } else {
      attempts.push({ candidate: NODE_GPU, outcome: 'skipped', detail: `no GPU visible: ${gpu.detail}` });
    }
  }
  // tfjs-node-gpu that really runs on the GPU stays first; else a hardware WebGPU adapter wins.
  if (p.backend === 'webgpu' || (p.backend === 'auto' && result?.device !== 'gpu')) {
    const onGpu = await tryWebGpu(load, env, attempts, p.backend === 'auto');
    if (onGpu != null) {
      if (result != null) attempts.push({ candidate: NODE_GPU, outcome: 'skipped', detail: 'it runs on the CPU; WebGPU has a GPU' });
      result = onGpu;
      reason =
        p.backend === 'webgpu'
          ? `${p.source === 'option' ? 'asked for' : 'ETT_BACKEND asks for'} webgpu`
          : `a WebGPU adapter (${onGpu.webgpu?.name}) is available${gpu?.visible ? ` and ${NODE_GPU} is not on the GPU` : ''}`;
    } else if (p.backend === 'webgpu') {
      throw new BackendInitError(
        `${p.source === 'option' ? "initBackend({ backend: 'webgpu' })" : 'ETT_BACKEND=webgpu'}: WebGPU could not be started. Install the optional peers \`webgpu\` and \`@tensorflow/tfjs-backend-webgpu\`, and a GPU driver with Vulkan (Linux; or Mesa's EGL/GLES for a software check), or choose 'wasm'.`,
        attempts,
      );
    }
  }
  if (result == null && (p.backend === 'tensorflow' || p.backend === 'auto') && gpu != null) {
    result = await tryNative(NODE_CPU, load, attempts, gpu);
    // Asked for libtensorflow explicitly: the GPU package also runs on the CPU.
    if (result == null && p.backend === 'tensorflow' && !gpu.visible) result = await tryNative(NODE_GPU, load, attempts, gpu);
  }
  if (result != null && result.backend === 'tensorflow') {
    reason =
      p.backend === 'tensorflow'
        ? `${p.source === 'option' ? 'asked for' : 'ETT_BACKEND asks for'} libtensorflow; using ${result.package}`
        : result.package === NODE_GPU
          ? `${NODE_GPU} is installed and a GPU is visible`
          : `${NODE_CPU} is installed${gpu?.visible ? ` (${NODE_GPU} was not usable)` : ''}`;
  } else if (result == null && p.backend === 'tensorflow') {
    throw new BackendInitError(
      `${p.source === 'option' ? "initBackend({ backend: 'tensorflow' })" : 'ETT_BACKEND=tensorflow'}: neither ${NODE_GPU} nor ${NODE_CPU} could be used. Install one (its install downloads libtensorflow; ${CUDA_NOTE}), or choose 'wasm'.`,
      attempts,
    );
  }
  if (result == null && (p.backend === 'wasm' || p.backend === 'auto')) {
    result = await tryWasm(p, options, env, attempts);
    if (result != null) {
      reason =
        p.backend === 'wasm'
          ? `${p.source === 'option' ? 'asked for' : 'ETT_BACKEND asks for'} wasm`
          : 'no usable @tensorflow/tfjs-node(-gpu) or GPU WebGPU adapter; WASM is the fastest backend that installs from npm alone';
    } else if (p.backend === 'wasm') {
      throw new BackendInitError(
        `${p.source === 'option' ? "initBackend({ backend: 'wasm' })" : 'ETT_BACKEND=wasm'}: the wasm backend could not be started.`,
        attempts,
      );
    }
  }
  if (result == null) {
    result = await tryCpu(attempts);
    if (result == null) throw new BackendInitError('initBackend: no backend could be started, not even cpu.', attempts);
    reason =
      p.backend === 'cpu'
        ? `${p.source === 'option' ? 'asked for' : 'ETT_BACKEND asks for'} cpu`
        : 'wasm could not be started; cpu is the last resort';
  }
  return { ...result, source: p.source, reason, attempts, gpu };
}

interface State {
  reports: Map<string, BackendReport>;
  pending: Map<string, Promise<BackendReport>>;
}
const KEY = Symbol.for('@ettjs/backend.initState');
function state(): State {
  const g = globalThis as typeof globalThis & { [KEY]?: State };
  g[KEY] ??= { reports: new Map(), pending: new Map() };
  return g[KEY];
}

/** The report of the last successful initBackend in this process, or null. */
export function lastBackendReport(): BackendReport | null {
  const reports = [...state().reports.values()];
  const active = reports.filter((r) => r.backend === tf.getBackend());
  return active.length > 0 ? structuredClone(active[active.length - 1]!) : null;
}

/**
 * Registers every tfjs gradient and chained op, picks a backend, makes it active and checks that it
 * really is (tfjs silently stays on the previous backend when one fails to start), and reports what
 * it chose and why. Order: `options.backend`, else ETT_BACKEND, else tfjs-node-gpu (installed and a
 * GPU visible) → tfjs-node → WASM with threads and the training kernels → cpu.
 *
 * Idempotent: a repeated call with the same request returns the cached report at once, as long as
 * that backend is still active.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  if (!gradientsRegistered()) {
    throw new BackendInitError('initBackend: the tfjs gradient registrations did not load (tf.getGradient("Sum") is missing).');
  }
  const env = options.env ?? process.env;
  const p = plan(options, env);
  const injected = options.loadModule != null || options.detectGpu != null;
  const key = `${p.source}:${p.backend}:${p.threads}:${options.native !== false}`;
  const s = state();
  const cached = injected ? undefined : s.reports.get(key);
  if (cached != null && tf.getBackend() === cached.backend) return structuredClone(cached);
  const inFlight = injected ? undefined : s.pending.get(key);
  if (inFlight != null) return structuredClone(await inFlight);
  const run = choose(p, options, env);
  if (!injected) s.pending.set(key, run);
  try {
    const report = await run;
    if (tf.getBackend() !== report.backend) {
      throw new BackendInitError(`initBackend: chose '${report.backend}' but tfjs is on '${tf.getBackend()}'.`, report.attempts);
    }
    if (!injected) s.reports.set(key, report);
    return structuredClone(report);
  } finally {
    if (!injected) s.pending.delete(key);
  }
}
