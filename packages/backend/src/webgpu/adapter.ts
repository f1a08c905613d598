import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { ModuleLoader } from '../init';

/** The GPU adapter the webgpu backend runs on, as initBackend found it. */
export interface WebGpuAdapterInfo {
  /** A readable name: the device, else the driver's description, else the vendor. */
  name: string;
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU rasteriser posing as a GPU (llvmpipe, lavapipe, SwiftShader): correct, and slower than wasm. */
  software: boolean;
  /** The Dawn toggles the adapter was found with (`[]` = Dawn's default: Vulkan on Linux, Metal, D3D12). */
  dawnFlags: string[];
  /** `core`, or `compatibility` (WebGPU's reduced feature level; Dawn's OpenGL ES backend offers only that). */
  featureLevel: 'core' | 'compatibility';
}

// The few WebGPU shapes used here, declared locally so that the published types need no @webgpu/types.
export interface GpuDeviceLike {
  limits: Record<string, number>;
  onuncapturederror: ((ev: { error: { message: string } }) => void) | null;
  lost: Promise<{ reason?: string; message: string }>;
  queue: { onSubmittedWorkDone(): Promise<void> };
}
export interface GpuAdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  limits: Record<string, number>;
  requestDevice(descriptor?: { requiredLimits?: Record<string, number>; requiredFeatures?: unknown[] }): Promise<GpuDeviceLike>;
}
export interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<GpuAdapterLike | null>;
}

/** The parts of the `webgpu` npm package (prebuilt Dawn) that are used here. */
export interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}

export interface FoundAdapter {
  /** The Dawn instance: it must outlive the adapter and device (a collected instance takes them down). */
  gpu: GpuLike;
  adapter: GpuAdapterLike;
  info: WebGpuAdapterInfo;
}

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software|microsoft basic render/i;

/** Whether the Vulkan loader library is installed (ldconfig's cache, else the usual paths). */
function vulkanLoaderPresent(): boolean {
  try {
    const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    if (r.status === 0 && r.stdout.includes('libvulkan.so.1')) return true;
  } catch {
    // fall through to the paths
  }
  return ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'].some((d) =>
    fs.existsSync(`${d}/libvulkan.so.1`),
  );
}

/** Where Dawn is asked for an adapter, in order: its default backend, then (Linux) OpenGL ES. */
export function dawnCandidates(
  platform: NodeJS.Platform,
  env: Record<string, string | undefined>,
): { flags: string[]; featureLevel: 'core' | 'compatibility' }[] {
  const custom = env['ETT_WEBGPU_FLAGS']?.trim();
  if (custom) {
    // Whitespace separates flags; a comma belongs to a flag's value (enable-dawn-features=a,b).
    const flags = custom.split(/\s+/).filter(Boolean);
    return [
      { flags, featureLevel: 'core' },
      { flags, featureLevel: 'compatibility' },
    ];
  }
  const list: { flags: string[]; featureLevel: 'core' | 'compatibility' }[] = [{ flags: [], featureLevel: 'core' }];
  if (platform === 'linux') list.push({ flags: ['backend=opengles'], featureLevel: 'compatibility' });
  return list;
}

function describe(adapter: GpuAdapterLike, flags: string[], featureLevel: 'core' | 'compatibility'): WebGpuAdapterInfo {
  const i = adapter.info ?? {};
  const vendor = i.vendor ?? '';
  const architecture = i.architecture ?? '';
  const device = i.device ?? '';
  const description = i.description ?? '';
  // The device name where the driver gives one ("NVIDIA H100 …", "llvmpipe …"); the description ("OpenGL version …") is less telling.
  const name = device || description || vendor || 'unnamed adapter';
  const software = i.isFallbackAdapter === true || SOFTWARE.test(`${vendor} ${device} ${description}`);
  return { name, vendor, architecture, device, description, software, dawnFlags: flags, featureLevel };
}

/**
 * Loads the `webgpu` package and asks Dawn for an adapter on each candidate backend; returns the
 * first hardware adapter, else the first software one (the caller decides whether that will do).
 * Without a display, Dawn's OpenGL ES backend needs EGL's surfaceless platform: EGL_PLATFORM is set
 * to `surfaceless` for this process when it is unset and there is no DISPLAY / WAYLAND_DISPLAY.
 */
export async function findAdapter(
  load: ModuleLoader,
  env: Record<string, string | undefined>,
  options: { hardwareOnly: boolean; platform?: NodeJS.Platform },
): Promise<{ dawn: DawnModule | null; found: FoundAdapter | null; tried: string[] }> {
  const platform = options.platform ?? process.platform;
  const mod = (await load('webgpu')) as (DawnModule & { default?: DawnModule }) | null;
  if (mod == null) return { dawn: null, found: null, tried: [] };
  const dawn = typeof mod.create === 'function' ? mod : (mod.default ?? mod);
  // The automatic choice looks only where a hardware adapter can be, quietly: on Linux that is
  // Vulkan (Dawn prints warnings when it probes a backend whose libraries are missing).
  let candidates = dawnCandidates(platform, env);
  const tried: string[] = [];
  if (platform === 'linux' && env['ETT_WEBGPU_FLAGS'] == null) {
    if (options.hardwareOnly) candidates = candidates.filter((c) => c.flags.length === 0);
    if (!vulkanLoaderPresent()) {
      tried.push('default backend: no Vulkan loader (libvulkan.so.1) on this machine');
      candidates = candidates.filter((c) => c.flags.length > 0);
    }
  }
  if (platform === 'linux' && process.env['EGL_PLATFORM'] == null && !env['DISPLAY'] && !env['WAYLAND_DISPLAY']) {
    process.env['EGL_PLATFORM'] = 'surfaceless';
  }
  let software: FoundAdapter | null = null;
  for (const c of candidates) {
    const label = `${c.flags.length > 0 ? c.flags.join(' ') : 'default backend'} (${c.featureLevel})`;
    let adapter: GpuAdapterLike | null = null;
    let gpu: GpuLike;
    try {
      gpu = dawn.create(c.flags);
      adapter = await gpu.requestAdapter({ powerPreference: 'high-performance', featureLevel: c.featureLevel });
    } catch (err) {
      tried.push(`${label}: ${(err as Error).message}`);
      continue;
    }
    if (adapter == null) {
      tried.push(`${label}: no adapter`);
      continue;
    }
    const info = describe(adapter, c.flags, c.featureLevel);
    tried.push(`${label}: ${info.name}${info.software ? ' (software)' : ''}`);
    if (!info.software) return { dawn, found: { gpu, adapter, info }, tried };
    software ??= { gpu, adapter, info };
  }
  return { dawn, found: software, tried };
}
