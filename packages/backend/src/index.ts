// gradients first: it registers tfjs-core's gradients and chained ops as a side effect.
export { gradientsRegistered } from './gradients';
// The fused GroupNorm and AdamW kernels (@ettjs/core's groupNorm and AdamW use them when present) for cpu and wasm.
import { registerAdamWKernel } from './fused/adamw';
import { registerGroupNormKernels } from './fused/group-norm';
import { registerSumSquaresKernel } from './fused/sum-squares';
registerGroupNormKernels('cpu');
registerGroupNormKernels('wasm');
registerAdamWKernel('cpu');
registerAdamWKernel('wasm');
registerSumSquaresKernel('cpu');
registerSumSquaresKernel('wasm');
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
