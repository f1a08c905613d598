// gradients first: it registers tfjs-core's gradients and chained ops as a side effect.
export { gradientsRegistered } from './gradients';
// The fused GroupNorm, RMSNorm, SwiGLU, AdamW and Σ‖g‖² kernels (@ettjs/core's groupNorm, rmsNorm, swiGlu, AdamW and
// globalNorm use them when present) for cpu and wasm, and LeakyReLU's one-kernel gradient.
import { registerAdamWKernel } from './fused/adamw';
import { registerGroupNormKernels } from './fused/group-norm';
import { registerLeakyReluGradKernel } from './fused/leaky-relu';
import { registerRmsNormKernels } from './fused/rms-norm';
import { registerSumSquaresKernel } from './fused/sum-squares';
import { registerSwigluKernels } from './fused/swiglu';
registerGroupNormKernels('cpu');
registerGroupNormKernels('wasm');
registerRmsNormKernels('cpu');
registerRmsNormKernels('wasm');
registerSwigluKernels('cpu');
registerSwigluKernels('wasm');
registerAdamWKernel('cpu');
registerAdamWKernel('wasm');
registerSumSquaresKernel('cpu');
registerSumSquaresKernel('wasm');
registerLeakyReluGradKernel('cpu');
registerLeakyReluGradKernel('wasm');
// Linear-time gradient tape filtering in the tfjs engine, for every backend (see tape.ts).
import { installLinearTapeFilter } from './tape';
installLinearTapeFilter();
export { doctor, formatDoctorReport } from './doctor';
export type { DoctorReport } from './doctor';
export { detectGpu } from './gpu';
export type { GpuInfo } from './gpu';
export { BackendInitError, importOptional, initBackend, lastBackendReport } from './init';
export type { BackendAttempt, BackendName, BackendReport, InitBackendOptions, ModuleLoader } from './init';
export { registerWasmTrainingKernels } from './wasm-kernels/index';
export type { WasmKernelOptions } from './wasm-kernels/index';
export { nativeStatus } from './native/load';
export type { NativeStatus } from './native/load';
export { WebGpuError } from './webgpu/setup';
export { im2colBudget } from './webgpu/kernels';
export type { WebGpuAdapterInfo } from './webgpu/adapter';
