export { Module, ModuleList, StateDictError } from './module';
export type { StateDictMismatch } from './module';
export { stopGradient, straightThrough } from './autodiff';
export { assertNoLeaks, tensorCountsOver, TensorLeakError } from './leaks';
export type { CausalLM, KVCache, TextTokenizer, TokenizerOutput, VisionTokenizer, VisualAdapter } from './interfaces';
