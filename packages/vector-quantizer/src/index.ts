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
