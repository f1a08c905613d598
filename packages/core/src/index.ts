export { Module, ModuleList, StateDictError } from './module';
export type { StateDictMismatch } from './module';
export { namedVariableGrads, stopGradient, straightThrough, untaped } from './autodiff';
export { assertNoLeaks, tensorCountsOver, TensorLeakError } from './leaks';
export type { CausalLM, KVCache, TextTokenizer, TokenizerOutput, VisionTokenizer, VisualAdapter } from './interfaces';
export {
  decodeSafetensorsEntry,
  loadSafetensorsFile,
  MAX_HEADER_BYTES,
  readSafetensors,
  SafetensorsError,
  safetensorsEntryToTensor,
  safetensorsToTensors,
  saveSafetensorsFile,
  writeSafetensors,
} from './safetensors';
export type { DecodedEntry, SafetensorsDtype, SafetensorsEntry, SafetensorsFile } from './safetensors';
export { ADAMW_KERNEL, AdamW, clipByGlobalNorm, DEFAULT_ADAMW_OPTIONS, globalNorm, SUM_SQUARES_KERNEL } from './optim';
export type { AdamWOptions, Gradients, NamedVariables, ParamGroup, ParamGroupState } from './optim';
export { GROUP_NORM_KERNEL, type GroupNormOptions, groupNorm, groupNormalize, RMS_NORM_KERNEL, rmsNorm } from './norm';
export {
  checkOnHost,
  type HostReadMode,
  hostReadsAreSync,
  MAX_PENDING_HOST_CHECKS,
  pendingHostChecks,
  setHostReadMode,
  settleHostChecks,
} from './host-checks';
export { SWIGLU_KERNEL, swiGlu } from './activations';
export { Rng, seededRandomNormal } from './random';
export type { RngState } from './random';
