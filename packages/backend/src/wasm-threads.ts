// Makes the multithreaded tfjs-backend-wasm build run in Node (tfjs 4.22). Measured, see
// MEASUREMENTS.md §2: tfjs hard-codes WASM_HAS_MULTITHREAD_SUPPORT to false in Node, and forcing it
// fails three ways, each fixed here:
//  1. Emscripten starts its pthread workers from `URL.createObjectURL(new Blob([script]))`, and a
//     Node Worker rejects `blob:nodedata` URLs (ERR_WORKER_PATH). We remember the parts of script
//     Blobs, and hand out a temp .cjs file path instead, both for the worker script and for the main
//     script Blob that is posted to each worker (`urlOrBlob`).
//  2. The main script Blob is `wasmFactoryThreadedSimd.toString()`, cut out of the rollup bundle:
//     it refers to the bundle's `require$$N` / `commonjsGlobal` aliases, which the worker lacks. We
//     prepend them.
//  3. backend.cc caps the thread pool at `logical cores / 2` (it assumes SMT), so on a 2-core
//     machine it always picks 1 thread. `withLogicalCoresAtLeast` makes os.cpus() report enough
//     cores for the duration of the backend's initialisation only.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';

const ALIASES =
  "var require$$0=require('fs'),require$$1=require('path'),require$$3=require('perf_hooks'),require$$4=require('os'),commonjsGlobal=globalThis;\n";

interface ShimState {
  parts: WeakMap<Blob, string>;
  files: WeakMap<Blob, string>;
  dir: string | null;
  count: number;
  workers: Set<Worker>;
  unref: boolean;
}

// Global so that two copies of this module (ESM + CJS, or a bundler duplicate) share one shim.
const KEY = Symbol.for('@ettjs/backend.wasmThreadsShim');
type WithShim = typeof globalThis & { [KEY]?: ShimState };

function isScriptType(options: BlobPropertyBag | undefined): boolean {
  const type = options?.type ?? '';
  return type === 'application/javascript' || type === 'text/javascript';
}

function blobToFile(state: ShimState, blob: Blob): string {
  const known = state.files.get(blob);
  if (known != null) return known;
  if (state.dir == null) {
    state.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ettjs-wasm-'));
    const dir = state.dir;
    // Normally removed by afterWasmStart(); this covers a start-up that never finished.
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  const file = path.join(state.dir, `worker-${state.count++}.cjs`);
  fs.writeFileSync(file, ALIASES + state.parts.get(blob));
  state.files.set(blob, file);
  return file;
}

/** True once {@link installWasmThreadsShim} has run in this process. */
export function wasmThreadsShimInstalled(): boolean {
  return (globalThis as WithShim)[KEY] != null;
}

/** The directory that holds the worker scripts (null until a threaded backend started). */
export function wasmThreadsTempDir(): string | null {
  return (globalThis as WithShim)[KEY]?.dir ?? null;
}

/**
 * Installs the Node patches the threaded WASM build needs (idempotent). Only script Blobs and the
 * worker `load` message are affected; every other Blob, object URL and message passes through.
 */
export function installWasmThreadsShim(): void {
  const g = globalThis as WithShim;
  if (g[KEY] != null) return;
  const state: ShimState = { parts: new WeakMap(), files: new WeakMap(), dir: null, count: 0, workers: new Set(), unref: false };
  g[KEY] = state;

  const NodeBlob = globalThis.Blob;
  globalThis.Blob = class ScriptRecordingBlob extends NodeBlob {
    constructor(blobParts?: BlobPart[], options?: BlobPropertyBag) {
      super(blobParts, options);
      if (isScriptType(options) && blobParts?.every((p) => typeof p === 'string')) {
        state.parts.set(this, (blobParts as string[]).join(''));
      }
    }
  };

  const createObjectURL = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (obj: Blob) => (obj instanceof NodeBlob && state.parts.has(obj) ? blobToFile(state, obj) : createObjectURL(obj));

  const postMessage = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function patchedPostMessage(this: Worker, message: unknown, ...rest: unknown[]) {
    const m = message as { urlOrBlob?: unknown } | null;
    if (m != null && typeof m === 'object' && m.urlOrBlob instanceof NodeBlob && state.parts.has(m.urlOrBlob)) {
      message = { ...m, urlOrBlob: blobToFile(state, m.urlOrBlob) };
      state.workers.add(this);
      if (state.unref) this.unref();
    }
    return (postMessage as (this: Worker, ...args: unknown[]) => void).call(this, message, ...rest);
  };
}

/**
 * Called once the threaded backend has started. (1) Unrefs the pool's workers: Emscripten keeps
 * them referenced, so a script that used threaded wasm would never end (during start-up their
 * replies are what keeps the event loop waiting, so not earlier). (2) Deletes the worker script
 * files: start-up waits until every pool worker has loaded them, and a worker started later gets
 * fresh files from the remembered Blob parts. Nothing is left in the temp directory even when the
 * process is killed (test runners kill their workers).
 */
export function afterWasmStart(): void {
  const state = (globalThis as WithShim)[KEY];
  if (state == null) return;
  state.unref = true;
  for (const w of state.workers) w.unref();
  if (state.dir != null) {
    fs.rmSync(state.dir, { recursive: true, force: true });
    state.dir = null;
    state.files = new WeakMap();
  }
}

/**
 * Runs `fn` while os.cpus() reports at least `cores` entries, then restores it. backend.cc sizes
 * its pthreadpool as min(requested, logical cores / 2), so a request for n threads needs 2n.
 */
export async function withLogicalCoresAtLeast<T>(cores: number, fn: () => Promise<T>): Promise<T> {
  const original = os.cpus;
  const real = original();
  if (real.length >= cores || real.length === 0) return fn();
  const padded = Array.from({ length: cores }, (_, i) => real[i % real.length]!);
  // The default import is the CommonJS module object that the wasm bundle's `require('os')` returns.
  os.cpus = () => padded;
  try {
    return await fn();
  } finally {
    os.cpus = original;
  }
}
