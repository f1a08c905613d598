export { LossComponentError, LossConfigError } from './errors';
export { assertFinite } from './finite';
export { maskedCrossEntropy } from './cross_entropy';
export type { CrossEntropyOptions, CrossEntropyResult } from './cross_entropy';
export { captionLoss } from './caption';
export type { CaptionLossOptions } from './caption';
export { visualCodeLoss } from './visual_code';
export { l1Loss, l2Loss, psnr } from './reconstruction';
export type { PsnrOptions } from './reconstruction';
export { ibqQuantLoss, vqQuantLoss } from './quantization';
export type { BetaPlacement, QuantLossOptions } from './quantization';
export { entropyLoss } from './entropy';
export type { EntropyLossOptions, EntropyLossResult } from './entropy';
export { LpipsLoss, lpipsDistance } from './perceptual';
export type { FeatureNetwork, LpipsLossOptions, PerceptualLoss } from './perceptual';
export { DEFAULT_STRUCTURAL_LOSS_OPTIONS, StructuralLoss } from './structural';
export type { StructuralLossOptions } from './structural';
export { Conv2d } from './conv';
export type { Conv2dOptions } from './conv';
export { BatchStatNorm, GroupNorm } from './norm';
export { DEFAULT_PATCH_DISCRIMINATOR_CONFIG, PatchDiscriminator } from './discriminator';
export type { PatchDiscriminatorConfig } from './discriminator';
export {
  DEFAULT_GAN_SCHEDULE,
  LecamEma,
  adaptiveGanWeight,
  discriminatorLoss,
  ganFactor,
  generatorAdversarialLoss,
  hingeDiscriminatorLoss,
  lecamRegularization,
  nonSaturatingGeneratorLoss,
} from './adversarial';
export type { AdaptiveWeightOptions, DiscriminatorLossOptions, DiscriminatorLossResult, GanSchedule, LecamOptions } from './adversarial';
export { DEFAULT_ALPHA, alphaAt } from './schedule';
export type { AlphaSchedule } from './schedule';
export {
  DEFAULT_ETT_OBJECTIVE_CONFIG,
  DEFAULT_VQ_OBJECTIVE_CONFIG,
  disposeObjective,
  ettObjective,
  resolveVqObjectiveConfig,
  vqObjective,
} from './objective';
export type {
  EttObjectiveConfig,
  ObjectiveResult,
  PerceptualConfig,
  VqObjectiveConfig,
  VqObjectiveConfigInput,
  VqObjectiveInput,
  VqObjectiveStep,
  VqWeights,
} from './objective';
