import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { type GpuInfo, detectGpu } from './gpu';
import { gradientsRegistered } from './gradients';
import { type BackendReport, CUDA_NOTE, type InitBackendOptions, initBackend } from './init';
import { WASM_KERNEL_PATCHES, patchedWasmKernels } from './wasm-kernels/index';
import { WEBGPU_KERNEL_PATCHES, patchedWebGpuKernels } from './webgpu/kernels';

/** Everything `ett doctor` prints about the compute setup. */
export interface DoctorReport {
  /** The active backend and how it was chosen. */
  backend: BackendReport;
  /** @tensorflow/tfjs-core version. */
  tfjsCore: string;
  node: string;
  platform: string;
  /** Logical CPU cores Node sees. */
  cores: number;
  /** tfjs gradients and chained ops are registered. */
  gradients: boolean;
  /** Kernels patched for wasm or webgpu, each with why (empty elsewhere). */
  kernels: { name: string; why: string }[];
  /** The NVIDIA GPU probe. */
  gpu: GpuInfo;
  /** Notes a user can act on. */
  advice: string[];
}

/**
 * Initialises the backend as {@link initBackend} would (cached if already done) and reports the
 * setup: backend, version, threads, SIMD, patched kernels, GPU detection and advice.
 */
export async function doctor(options: InitBackendOptions = {}): Promise<DoctorReport> {
  const backend = await initBackend(options);
  const gpu = backend.gpu ?? (options.detectGpu ?? (() => detectGpu(options.env ?? process.env)))();
  const advice = [...backend.warnings];
  if (gpu.visible && backend.backend !== 'tensorflow') {
    advice.push(
      `A GPU is visible but unused: install @tensorflow/tfjs-node-gpu (needs network access to download libtensorflow). ${CUDA_NOTE}.`,
    );
  }
  if (gpu.visible && (gpu.cuda11 === false || gpu.cudnn8 === false)) {
    advice.push(`libcudart.so.11.0 and/or libcudnn.so.8 are not on the loader path: tfjs-node-gpu would run on the CPU. ${CUDA_NOTE}.`);
  }
  const kernels =
    backend.backend === 'wasm'
      ? patchedWasmKernels().map((name) => ({ name, why: WASM_KERNEL_PATCHES[name] ?? '' }))
      : backend.backend === 'webgpu'
        ? patchedWebGpuKernels().map((name) => ({ name, why: WEBGPU_KERNEL_PATCHES[name] ?? '' }))
        : [];
  return {
    backend,
    tfjsCore: tf.version_core,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    gradients: gradientsRegistered(),
    kernels,
    gpu,
    advice,
  };
}

/** The doctor report as the plain text the CLI prints. */
export function formatDoctorReport(r: DoctorReport): string {
  const b = r.backend;
  const lines = [
    `backend      ${b.backend} (${b.package} ${b.version}) on ${b.device}`,
    `chosen by    ${b.source}: ${b.reason}`,
    `threads      ${b.threads ?? 'libtensorflow decides'}`,
    `SIMD         ${b.simd == null ? 'n/a' : b.simd ? 'yes' : 'no'}`,
    ...(b.webgpu == null
      ? []
      : [
          `adapter      ${b.webgpu.name}${b.webgpu.software ? ' (software)' : ''}, Dawn ${b.webgpu.dawnFlags.join(' ') || 'default backend'}, ${b.webgpu.featureLevel}`,
        ]),
    `native       ${b.native == null ? 'n/a' : b.native.loaded ? `${b.native.isa}, ${b.native.threads} threads (${b.native.detail})` : `off: ${b.native.detail}`}`,
    `tfjs-core    ${r.tfjsCore}, gradients ${r.gradients ? 'registered' : 'MISSING'}`,
    `node         ${r.node} ${r.platform}, ${r.cores} cores`,
    `GPU          ${r.gpu.visible ? `${r.gpu.devices.join(', ') || 'NVIDIA GPU'} (driver ${r.gpu.driver ?? '?'})` : 'none'}: ${r.gpu.detail}`,
  ];
  if (r.gpu.visible) lines.push(`CUDA 11 / cuDNN 8   ${String(r.gpu.cuda11)} / ${String(r.gpu.cudnn8)}`);
  lines.push('tried');
  for (const a of b.attempts) lines.push(`  ${a.outcome.padEnd(8)} ${a.candidate}: ${a.detail}`);
  if (r.kernels.length > 0) {
    lines.push(`patched kernels (${b.backend})`);
    for (const k of r.kernels) lines.push(`  ${k.name}: ${k.why}`);
  }
  if (r.advice.length > 0) {
    lines.push('advice');
    for (const a of r.advice) lines.push(`  - ${a}`);
  }
  return lines.join('\n');
}
