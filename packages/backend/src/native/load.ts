// Loads the native CPU kernels (native/ettjs_native.cc), prebuilt per instruction set under
// prebuilds/<platform>-<arch>/ and shipped inside the package: nothing is compiled or downloaded at
// install. Where no prebuilt file fits (another platform, a CPU without AVX2+FMA, ETT_NATIVE=0, a
// file that fails to load) the wasm backend keeps its own kernels and the reason is reported.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions. Offsets and strides are in float32 elements of `heap`. */
export interface NativeAddon {
  gemm(
    heap: Float32Array,
    aOffset: number,
    bOffset: number,
    cOffset: number,
    batch: number,
    m: number,
    n: number,
    k: number,
    transposeA: 0 | 1,
    transposeB: 0 | 1,
    aStride: number,
    bStride: number,
  ): void;
  /**
   * mode 0 forward (x, w → y), 1 input gradient (dy, w → dx), 2 filter gradient (x, dy → dw); then the
   * 15 geometry numbers, then the bias offset ([outC], added to y; mode 0 only) or -1 for none.
   */
  conv2d(mode: 0 | 1 | 2, heap: Float32Array, in0: number, in1: number, out: number, ...geometryThenBias: number[]): void;
  /**
   * GroupNorm + affine (+ SiLU), NHWC; offsets in floats. mode 0 forward (x, gamma, beta → out), 1
   * backward (x, gamma, beta, dy → out = dx, dgamma, dbeta); unused offsets are ignored.
   */
  groupNorm(
    mode: 0 | 1,
    heap: Float32Array,
    x: number,
    gamma: number,
    beta: number,
    dy: number,
    out: number,
    dgamma: number,
    dbeta: number,
    batch: number,
    hw: number,
    channels: number,
    groups: number,
    silu: 0 | 1,
    eps: number,
  ): void;
  /**
   * RMSNorm over the last axis of [rows, cols] with weight w [cols]; offsets in floats. mode 0
   * forward (x, w → out = y), 1 backward (x, w, dy → out = dx, dw); unused offsets are ignored.
   */
  rmsNorm(
    mode: 0 | 1,
    heap: Float32Array,
    x: number,
    w: number,
    dy: number,
    out: number,
    dw: number,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  /** out[r] = max of row r of [rows, cols] (NaN if the row has one). */
  max(heap: Float32Array, x: number, out: number, rows: number, cols: number): void;
  /** out[r] (int32) = the first index of row r's maximum, as tfjs scans (`v > best`; NaN after element 0 never wins). */
  argMax(heap: Float32Array, x: number, out: number, rows: number, cols: number): void;
  /** tfjs's AvgPool over NHWC float32 for whole ('valid') windows: each output the window's sum / (filterH·filterW). */
  avgPool(
    heap: Float32Array,
    x: number,
    y: number,
    batch: number,
    channels: number,
    inH: number,
    inW: number,
    outH: number,
    outW: number,
    strideH: number,
    strideW: number,
    filterH: number,
    filterW: number,
  ): void;
  /** heap[out] = Σ x² over the spans of `table` (offset, size pairs in floats), summed in double. */
  sumSquares(heap: Float32Array, table: Int32Array, count: number, out: number): void;
  /** SwiGLU gating over n floats: mode 0 y = g·σ(g)·u → out; 1 (with dy) dg → out, du → out2. */
  swiglu(mode: 0 | 1, heap: Float32Array, g: number, u: number, dy: number, out: number, out2: number, n: number): void;
  /**
   * out[i] = big[i] op small[i % m] (or small[i % m] op big[i] when smallFirst = 1) for i < n; op 0
   * add, 1 sub, 2 mul, 3 div; m divides n (m = n elementwise, m = 1 a scalar).
   */
  binary(op: 0 | 1 | 2 | 3, heap: Float32Array, big: number, small: number, out: number, n: number, m: number, smallFirst: 0 | 1): void;
  /**
   * out[i0..i3] = a[Σ i·stridesA] op b[Σ i·stridesB] over four dimensions (op as `binary`); each
   * operand's innermost stride is 0 (broadcast) or 1.
   */
  broadcast(op: 0 | 1 | 2 | 3, heap: Float32Array, a: number, b: number, out: number, ...dimsThenStrides: number[]): void;
  /**
   * tfjs's AvgPoolGrad over NHWC float32 (dx = each dy element spread over its window, divided by
   * filterH·filterW); dilation 1.
   */
  avgPoolGrad(
    heap: Float32Array,
    dy: number,
    dx: number,
    batch: number,
    channels: number,
    inH: number,
    inW: number,
    outH: number,
    outW: number,
    strideH: number,
    strideW: number,
    filterH: number,
    filterW: number,
    padTop: number,
    padLeft: number,
  ): void;
  /** Softmax over the last axis of x [rows, cols] (exp relative error about 2e-7). */
  softmax(heap: Float32Array, x: number, out: number, rows: number, cols: number): void;
  /** out[i] = e^x[i] for i < n (relative error about 2e-7; 0 where the result would be denormal). */
  exp(heap: Float32Array, x: number, out: number, n: number): void;
  /**
   * out[c] = Σ_r x[r, c] / divisor when leading = 1, else out[r] = Σ_c x[r, c] / divisor; double
   * accumulation and division, one rounding (divisor 1: Sum; the reduced count: Mean).
   */
  sum(heap: Float32Array, x: number, out: number, rows: number, cols: number, leading: 0 | 1, divisor: number): void;
  /**
   * dst[Σ i·dstStrides] = src[Σ i·srcStrides] over the four dimensions `dims` (element strides ≥ 0):
   * a copy of 4-byte elements (float32 or int32 bits) for Transpose, Slice, SplitV, Concat, PadV2.
   */
  copy(heap: Float32Array, src: number, dst: number, ...dimsThenSrcStridesThenDstStrides: number[]): void;
  /** grad 0: out = x < 0 ? alpha·x : x (dy ignored); grad 1: out = x > 0 ? dy : alpha·dy; over n floats. */
  leakyRelu(heap: Float32Array, x: number, dy: number, out: number, n: number, alpha: number, grad: 0 | 1): void;
  /**
   * One AdamW step of `count` parameters; `table` holds 8 int32 per parameter: the float offsets of
   * param, grad, m, v, new m, new v, new param, then its size.
   */
  adamw(
    heap: Float32Array,
    table: Int32Array,
    count: number,
    b1: number,
    b2: number,
    eps: number,
    decay: number,
    stepSize: number,
    bc2Sqrt: number,
  ): void;
  setThreads(n: number): number;
  /**
   * How long (µs, default 200, at most 100 000) the pool's threads spin for the next job before they
   * sleep, and the caller for its workers before it blocks; 0 never spins. Returns the previous value.
   */
  setSpin(micros: number): number;
  /** Caps the im2col buffer (floats, default 2^24); bigger convolutions run in row chunks. Returns the previous cap. */
  setScratchLimit(floats: number): number;
  threads(): number;
  isa(): string;
}

/** Whether the native kernels are in use, and why (what `doctor()` prints). */
export interface NativeStatus {
  loaded: boolean;
  /** 'avx512' or 'avx2' when loaded. */
  isa: string | null;
  /** The addon's thread pool size when loaded. */
  threads: number | null;
  /** The file loaded, or why none was. */
  detail: string;
}

const KEY = Symbol.for('@ettjs/backend.native');
type WithNative = typeof globalThis & { [KEY]?: { addon: NativeAddon | null; status: NativeStatus } };

/** CPU feature flags from /proc/cpuinfo (Linux); null where they cannot be read. */
function cpuFlags(): Set<string> | null {
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const line = text.split('\n').find((l) => l.startsWith('flags'));
    return line == null
      ? null
      : new Set(
          line
            .slice(line.indexOf(':') + 1)
            .trim()
            .split(/\s+/),
        );
  } catch {
    return null;
  }
}

/** The instruction sets the prebuilt files need, best first. */
const VARIANTS: { isa: string; needs: string[] }[] = [
  { isa: 'avx512', needs: ['avx2', 'fma', 'bmi2', 'avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl'] },
  { isa: 'avx2', needs: ['avx2', 'fma', 'bmi1', 'bmi2', 'f16c', 'movbe'] },
];

/** The package root: the first directory above this module with @ettjs/backend's package.json (src/ in tests, dist/ when built). */
function packageRoot(): string | null {
  // import.meta.url in the CJS build too: tsup's `shims` fills it in (tsup.config.ts).
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === '@ettjs/backend') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    dir = path.dirname(dir);
  }
  return null;
}

/**
 * The prebuilt file to load for these CPU flags: the best build the CPU runs, or the one
 * ETT_NATIVE_ISA names (when the CPU runs it); else why none.
 */
export function chooseVariant(flags: Set<string> | null, env: Record<string, string | undefined>): { isa: string } | { reason: string } {
  const wanted = env['ETT_NATIVE_ISA']?.trim().toLowerCase();
  if (wanted && !VARIANTS.some((v) => v.isa === wanted))
    return { reason: `ETT_NATIVE_ISA=${wanted} is not a build (${VARIANTS.map((v) => v.isa).join(', ')}); using the wasm kernels` };
  if (flags == null) return { reason: 'CPU features unreadable (/proc/cpuinfo)' };
  const variant = VARIANTS.find((v) => (!wanted || v.isa === wanted) && v.needs.every((f) => flags.has(f)));
  if (variant != null) return { isa: variant.isa };
  return {
    reason: wanted
      ? `the CPU lacks what the ${wanted} build needs; using the wasm kernels`
      : 'the CPU lacks AVX2+FMA; using the wasm kernels',
  };
}

/** ETT_NATIVE set to 0 / false / off. */
export function nativeOffByEnv(env: Record<string, string | undefined>): boolean {
  const flag = env['ETT_NATIVE']?.trim().toLowerCase();
  return flag === '0' || flag === 'false' || flag === 'off';
}

function load(env: Record<string, string | undefined>): { addon: NativeAddon | null; status: NativeStatus } {
  const none = (detail: string) => ({ addon: null, status: { loaded: false, isa: null, threads: null, detail } });
  if (nativeOffByEnv(env)) return none('disabled by ETT_NATIVE');
  const platform = `${process.platform}-${process.arch}`;
  const root = packageRoot();
  if (root == null) return none('package root of @ettjs/backend not found');
  const dir = path.join(root, 'prebuilds', platform);
  if (!fs.existsSync(dir)) return none(`no prebuilt native kernels for ${platform}; using the wasm kernels`);
  const choice = chooseVariant(cpuFlags(), env);
  if ('reason' in choice) return none(choice.reason);
  const variant = choice;
  const file = path.join(dir, `ettjs-native.${variant.isa}.node`);
  try {
    const addon = createRequire(import.meta.url)(file) as NativeAddon;
    const threadsEnv = Number(env['ETT_NATIVE_THREADS']);
    if (Number.isInteger(threadsEnv) && threadsEnv >= 1) addon.setThreads(threadsEnv);
    const spinEnv = env['ETT_NATIVE_SPIN_US']?.trim();
    if (spinEnv != null && spinEnv !== '' && Number.isInteger(Number(spinEnv)) && Number(spinEnv) >= 0) addon.setSpin(Number(spinEnv));
    return { addon, status: { loaded: true, isa: addon.isa(), threads: addon.threads(), detail: file } };
  } catch (err) {
    return none(`${file} failed to load (${(err as Error).message.split('\n')[0]}); using the wasm kernels`);
  }
}

/**
 * The native kernels, loaded once per process (later calls return the same result; `env` is read
 * on the first call only). Set ETT_NATIVE=0 to keep them off, ETT_NATIVE_THREADS to size their pool
 * (default: the logical cores), ETT_NATIVE_SPIN_US for how long its threads spin between jobs, ETT_NATIVE_ISA=avx2 to load the AVX2 build on an AVX-512 CPU.
 */
export function loadNative(env: Record<string, string | undefined> = process.env): { addon: NativeAddon | null; status: NativeStatus } {
  const g = globalThis as WithNative;
  g[KEY] ??= load(env);
  return g[KEY];
}

/** The native kernels' status (loads them if nothing did yet). */
export function nativeStatus(): NativeStatus {
  const { status, addon } = loadNative();
  return addon == null ? { ...status } : { ...status, threads: addon.threads() };
}
