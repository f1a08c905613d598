export { ETT_FORMAT_VERSION, ETT_MODEL_DIRS, ETT_MODEL_TYPE, ETTModel, ETTModelError, disposeTokens } from './ett-model';
export type { CaptionOptions, ETTModelParts, ETTPretrainedConfig, SavePretrainedOptions } from './ett-model';
export { GanCritic } from './critic';
export { ARMS, alignment, postTrainingChat, postTrainingGen, semantic, textPretraining, tokenizerPretraining } from './recipes';
export type { Arm, ETTBatch, RecipeOptions } from './recipes';
export { IGNORE_INDEX, SequenceLengthError, buildCaptionSequences, buildGenerationSequences } from './sequence';
export type { CaptionSequences, GenerationSequences, SpecialIds } from './sequence';
export { evaluateGeneration, evaluateModel } from './evaluate';
export type { EvalReport, EvalSample, GenerationEvalOptions, GenerationEvalReport } from './evaluate';
export { DEFAULT_JUDGE_CONFIG, GenerationJudge, JudgeError, scoreReadings, trainJudge } from './judge';
export type { JudgeConfig, JudgeReading, JudgeScore, JudgeTarget, JudgeTrainingInfo, TrainJudgeOptions } from './judge';
export { withInterruptStop } from './interrupt';
export {
  QUICKSTART_CONFIG,
  TrainingStoppedError,
  buildModel,
  resolveExperimentConfig,
  runExperiment,
  summaryLines,
  syntheticSource,
} from './experiment';
export { chanceLevels, compareFields, describeArmDifference, FIELD_LABELS, FIELDS, fieldsAtChance, isAtChance } from './field-scores';
export type { FieldDifference, FieldScores } from './field-scores';
export type { ArmResult, ExperimentConfig, ExperimentResult } from './experiment';
export { RUN_STAGES, RunDirError, listRunWeights, loadRun } from './run-dir';
export type { LoadRunOptions, RunStage, RunWeights } from './run-dir';
export { accuracyChart, lineChart, metricSeries, readMetricsLog, renderReport, stageSpans, usageHistogram, writeReport } from './report';
export type { AccuracyCurve, MetricRecord, ReportData, ReportImage, ReportTable } from './report';
