export { Trainer } from './trainer';
export type { FitOptions, FitResult, TrainerOptions } from './trainer';
export type { DiscriminatorSpec, EvalResult, LossFn, LossOutput, ModuleRef, ParamGroupSpec, Stage, StepContext } from './stage';
export { IBQ_ADAM_BETAS } from './optimizer-options';
export type { OptimizerOptions } from './optimizer-options';
export { PAPER_WARMUP_RATIO, learningRateFactor, warmupSteps } from './schedule';
export type { Schedule } from './schedule';
export { decays } from './parameter-selection';
export type { DataSource } from './data-source';
export { DataSourceError } from './data-source';
export { TrainerConfigError } from './trainer-config-error';
export { TrainingDivergedError } from './non-finite-guard';
export {
  CHECKPOINT_FILES,
  CheckpointError,
  CheckpointMismatchError,
  checkpointName,
  latestCheckpoint,
  listCheckpoints,
  writeCheckpoint,
} from './checkpoint';
export type { EvalRecord, StepRecord, TrainerState } from './checkpoint';
export { MetricsLog } from './metrics-log';
export type { ProgressMode } from './progress';
export { stepSeed } from './step-seed';
