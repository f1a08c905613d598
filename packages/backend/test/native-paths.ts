// Shared by the kernel tests: the native addon with call counters, so a test on the native path
// fails if its kernel silently fell back to WASM or JavaScript.
import { afterEach, beforeEach } from 'vitest';
import { type NativeAddon, loadNative } from '../src/native/load';
import { activeNativeAddon, setNativeAddon } from '../src/wasm-kernels/native';

type EntryPoint =
  | 'gemm'
  | 'conv2d'
  | 'groupNorm'
  | 'swiglu'
  | 'rmsNorm'
  | 'binary'
  | 'broadcast'
  | 'sum'
  | 'max'
  | 'sumSquares'
  | 'exp'
  | 'avgPoolGrad'
  | 'softmax'
  | 'adamw'
  | 'copy'
  | 'leakyRelu'
  | 'argMax'
  | 'avgPool';

/**
 * Returns `calls` (one counter per named entry point, starting at 0) and `addon()`: the loaded addon
 * with those entry points counting into `calls`, or null where no addon loads.
 */
export function countingAddon<K extends EntryPoint>(names: readonly K[]): { calls: Record<K, number>; addon: () => NativeAddon | null } {
  const calls = Object.fromEntries(names.map((n) => [n, 0])) as Record<K, number>;
  const addon = (): NativeAddon | null => {
    const real = loadNative().addon;
    if (real == null) return null;
    const counted: NativeAddon = { ...real };
    for (const n of names) {
      const f = real[n] as (...args: unknown[]) => void;
      (counted[n] as unknown) = (...args: unknown[]) => {
        calls[n]++;
        f(...args);
      };
    }
    return counted;
  };
  return { calls, addon };
}

/** The fused kernels' three paths: cpu's JavaScript loops, wasm on the (counting) addon, wasm without it. */
export function fusedKernelPaths(addon: () => NativeAddon | null) {
  return [
    { name: 'cpu', backend: 'cpu' as const, addon: () => null },
    { name: 'wasm with the native addon', backend: 'wasm' as const, addon },
    { name: 'wasm without it', backend: 'wasm' as const, addon: () => null },
  ];
}

/**
 * In a describe block over one of {@link fusedKernelPaths}: before each test the path's addon becomes
 * the active one and `calls[entry]` is zeroed; after it the previous addon is back. Returns the addon
 * the current test runs with (null on the paths without it).
 */
export function usePathAddon<K extends EntryPoint>(
  addon: () => NativeAddon | null,
  calls: Record<K, number>,
  entry: K,
): () => NativeAddon | null {
  let saved: NativeAddon | null = null;
  let wanted: NativeAddon | null = null;
  beforeEach(() => {
    saved = activeNativeAddon();
    wanted = addon();
    setNativeAddon(wanted);
    calls[entry] = 0;
  });
  afterEach(() => {
    setNativeAddon(saved);
  });
  return () => wanted;
}
