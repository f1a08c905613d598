export { gradientsRegistered } from './gradients';
export { initBackend } from './init';
export type { BackendName, BackendReport, InitBackendOptions } from './init';
