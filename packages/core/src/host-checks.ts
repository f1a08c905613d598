import * as tf from '@tensorflow/tfjs-core';

/**
 * Input checks that must read tensor values on the host (a NaN count, an index range) cost a
 * synchronous read on CPU and WASM, which is cheap. On WebGPU a synchronous read is impossible in
 * Node (buffers map asynchronously) and a stall in browsers, so there the checks are queued and run
 * by the next `await settleHostChecks()` — the Trainer calls it after the gradients and before the
 * optimizer step, so a failed check still stops the step before anything is updated.
 */
export type HostReadMode = 'auto' | 'sync' | 'deferred';

/** Backends whose tensors cannot (or should not) be read synchronously. */
const ASYNC_BACKENDS = new Set(['webgpu']);

/** Queued checks beyond this are dropped, oldest first (nobody is settling them), with one warning. */
export const MAX_PENDING_HOST_CHECKS = 256;

interface PendingCheck {
  tensor: tf.Tensor;
  check: (values: tf.TypedArray) => void;
}

interface HostCheckState {
  mode: HostReadMode;
  pending: PendingCheck[];
  warnedOverflow: boolean;
}

// One queue per process, even if both the ESM and the CJS build of this package are loaded.
const STATE_KEY = Symbol.for('@ettjs/core/host-checks');
function state(): HostCheckState {
  const g = globalThis as unknown as Record<symbol, HostCheckState | undefined>;
  let s = g[STATE_KEY];
  if (!s) {
    s = { mode: 'auto', pending: [], warnedOverflow: false };
    g[STATE_KEY] = s;
  }
  return s;
}

/**
 * How host reads are done: `'auto'` (default) defers them on WebGPU only; `'deferred'` always
 * (e.g. to keep a browser's WebGL pipeline from stalling); `'sync'` never. Returns the previous mode.
 */
export function setHostReadMode(mode: HostReadMode): HostReadMode {
  if (mode !== 'auto' && mode !== 'sync' && mode !== 'deferred') {
    throw new Error(`setHostReadMode: mode must be 'auto', 'sync' or 'deferred', got ${JSON.stringify(mode)}`);
  }
  const s = state();
  const previous = s.mode;
  s.mode = mode;
  return previous;
}

/** Whether tensor values are read synchronously now (false on WebGPU, or when set `'deferred'`). */
export function hostReadsAreSync(): boolean {
  const { mode } = state();
  if (mode !== 'auto') return mode === 'sync';
  return !ASYNC_BACKENDS.has(tf.getBackend());
}

/**
 * Runs `check` on the values of `tensor`, now when reads are synchronous, otherwise at the next
 * `settleHostChecks()`. Takes ownership of `tensor` (it is disposed after the check; it may be
 * created inside `tf.tidy`). `check` throws to reject the input.
 */
export function checkOnHost(tensor: tf.Tensor, check: (values: tf.TypedArray) => void): void {
  if (hostReadsAreSync()) {
    try {
      check(tensor.dataSync());
    } finally {
      tensor.dispose();
    }
    return;
  }
  const s = state();
  s.pending.push({ tensor: tf.keep(tensor), check });
  if (s.pending.length > MAX_PENDING_HOST_CHECKS) {
    (s.pending.shift() as PendingCheck).tensor.dispose();
    if (!s.warnedOverflow) {
      s.warnedOverflow = true;
      console.warn(
        `checkOnHost: more than ${MAX_PENDING_HOST_CHECKS} input checks queued without settleHostChecks(); the oldest are dropped. ` +
          'Call `await settleHostChecks()` after each step (the Trainer does). (warned once)',
      );
    }
  }
}

/** Checks queued and not yet settled. */
export function pendingHostChecks(): number {
  return state().pending.length;
}

/**
 * Reads every queued check's tensor (all reads in flight at once), runs the checks in the order
 * they were queued, and throws the first failure after all have run. Always empties the queue.
 */
export async function settleHostChecks(): Promise<void> {
  const s = state();
  const batch = s.pending;
  s.pending = [];
  if (batch.length === 0) return;
  let values: tf.TypedArray[];
  try {
    values = await Promise.all(batch.map((p) => p.tensor.data()));
  } finally {
    for (const p of batch) p.tensor.dispose();
  }
  let first: unknown = null;
  batch.forEach((p, i) => {
    try {
      p.check(values[i]);
    } catch (err) {
      first ??= err;
    }
  });
  if (first !== null) throw first;
}
