export { CodebookQuantizer, weightedQuantizerLoss } from './codebook-quantizer';
export type {
  CodebookInit,
  CodebookOptions,
  CodebookUpdate,
  DeadCodeRestart,
  EntropyPenalty,
  QuantizeCallOptions,
  QuantizerResult,
  QuantizerUpdateReport,
} from './codebook-quantizer';
export { DEFAULT_IBQ_OPTIONS, IBQQuantizer, ibqStraightThrough } from './ibq';
export type { IBQBetaPlacement, IBQOptions } from './ibq';
export { DEFAULT_VQ_OPTIONS, VectorQuantizer } from './vq';
export type { VQBetaPlacement, VQOptions } from './vq';
export { codebookEntropyLoss } from './entropy';
export { CodebookUsage, codePerplexity } from './usage';
export { VQInputError } from './errors';
export { Conv2d } from './layers/conv';
export type { Conv2dOptions, ConvImpl } from './layers/conv';
export { GroupNorm } from './layers/norm';
export { SeedSequence } from './layers/init';
export { upsampleNearest2x } from './layers/sampling';
export {
  DEFAULT_VQ_TOKENIZER_CONFIG,
  VQ_TOKENIZER_MODEL_TYPE,
  VQ_TOKENIZER_PAPER,
  VQ_TOKENIZER_TINY,
  VQTokenizer,
} from './tokenizer';
export type { RangeCheck, TokenizerQuantizer, VQTokenizerConfig, VQTokenizerOutput } from './tokenizer';
