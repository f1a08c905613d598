import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

/** What the machine shows of an NVIDIA GPU, before any TensorFlow library is loaded. */
export interface GpuInfo {
  /** True when an NVIDIA GPU is visible to this process. */
  visible: boolean;
  /** GPU names from nvidia-smi (empty when it is missing). */
  devices: string[];
  /** NVIDIA driver version, when known. */
  driver: string | null;
  /**
   * Whether the CUDA 11 runtime (libcudart.so.11.0) and cuDNN 8 (libcudnn.so.8) that
   * @tensorflow/tfjs-node-gpu 4.22 links against (built for CUDA 11.2 / cuDNN 8.1) are on the loader
   * path (from `ldconfig -p`; null when that could not be checked).
   */
  cuda11: boolean | null;
  cudnn8: boolean | null;
  /** How this was decided, in words. */
  detail: string;
}

function run(cmd: string, args: string[]): string | null {
  try {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    return r.status === 0 ? r.stdout : null;
  } catch {
    return null;
  }
}

/**
 * Looks for an NVIDIA GPU without loading TensorFlow: CUDA_VISIBLE_DEVICES, then nvidia-smi, then
 * /proc/driver/nvidia. Also checks for the CUDA 11 / cuDNN 8 libraries tfjs-node-gpu 4.22 needs.
 */
export function detectGpu(env: Record<string, string | undefined> = process.env): GpuInfo {
  const none = (detail: string): GpuInfo => ({ visible: false, devices: [], driver: null, cuda11: null, cudnn8: null, detail });
  const cvd = env['CUDA_VISIBLE_DEVICES'];
  if (cvd != null && (cvd.trim() === '' || cvd.trim() === '-1')) return none(`CUDA_VISIBLE_DEVICES=${JSON.stringify(cvd)} hides all GPUs`);
  let devices: string[] = [];
  let driver: string | null = null;
  let detail: string;
  const smi = run('nvidia-smi', ['--query-gpu=name,driver_version', '--format=csv,noheader']);
  if (smi != null && smi.trim() !== '') {
    const rows = smi
      .trim()
      .split('\n')
      .map((l) => l.split(',').map((s) => s.trim()));
    devices = rows.map((r) => r[0] ?? '');
    driver = rows[0]?.[1] ?? null;
    detail = `nvidia-smi lists ${devices.length} GPU(s)`;
  } else if (fs.existsSync('/proc/driver/nvidia/version')) {
    const text = fs.readFileSync('/proc/driver/nvidia/version', 'utf8');
    driver = /Kernel Module\s+([\d.]+)/.exec(text)?.[1] ?? null;
    detail = 'NVIDIA kernel driver loaded (/proc/driver/nvidia), nvidia-smi not found';
  } else {
    return none('no nvidia-smi and no NVIDIA kernel driver');
  }
  const ld = run('ldconfig', ['-p']) ?? run('/sbin/ldconfig', ['-p']);
  const extra = (env['LD_LIBRARY_PATH'] ?? '').split(':').filter(Boolean);
  const inLdPath = (lib: string) => extra.some((dir) => fs.existsSync(`${dir}/${lib}`));
  const cuda11 = ld == null && extra.length === 0 ? null : (ld?.includes('libcudart.so.11.0') ?? false) || inLdPath('libcudart.so.11.0');
  const cudnn8 = ld == null && extra.length === 0 ? null : (ld?.includes('libcudnn.so.8') ?? false) || inLdPath('libcudnn.so.8');
  return { visible: true, devices, driver, cuda11, cudnn8, detail };
}
