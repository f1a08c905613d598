import type { Module } from '@ettjs/core';
import type * as tf from '@tensorflow/tfjs-core';
import type { OptimizerOptions } from './optimizer-options';
import { validateOptimizerOptions } from './optimizer-options';
import type { Schedule } from './schedule';
import { validateSchedule } from './schedule';
import { TrainerConfigError, checkInt, checkKnownKeys, checkNumber } from './trainer-config-error';

/** What a loss function returns: the scalar to differentiate and every named term, for the log. */
export interface LossOutput {
  /** The scalar the optimizer minimises. */
  total: tf.Scalar;
  /** Named terms (`cap`, `l1`, `quant`, `gan`, ...), each a scalar; logged, not differentiated. */
  components?: Record<string, tf.Scalar>;
  /** Plain numbers to log with the step (codebook `usage`, `perplexity`, ...). */
  stats?: Record<string, number>;
}

/** What a loss function and the hooks see. */
export interface StepContext {
  /** The stage's name. */
  stage: string;
  /** Optimizer steps completed in the whole run before this one (0-based). */
  step: number;
  /** Optimizer steps completed in this stage before this one. */
  stageStep: number;
  /** Micro-batch index within a gradient-accumulation step (0 … gradAccumulation−1). */
  microStep: number;
  /**
   * A seed for anything random in the loss (noise, dropout, augmentation), derived from the run
   * seed, the step and the micro-step only: a resumed run sees the same seeds as an uninterrupted one.
   */
  seed: number;
  /** The model being trained. */
  model: Module;
}

/** A loss function. It runs inside the gradient tape: build the loss from the model's forward. */
export type LossFn<B> = (batch: B, ctx: StepContext) => LossOutput;

/** Modules addressed by dotted path in the model (`'tokenizer.encoder'`) or by instance; `'*'` is the whole model. */
export type ModuleRef = string | Module;

/** A set of modules with its own hyperparameters (e.g. a lower learning rate for the LM). */
export interface ParamGroupSpec {
  /** Label in logs and checkpoints. Required, unique in the stage. */
  name: string;
  /** Modules whose trainable parameters belong to this group (first matching group wins). */
  modules: ModuleRef[];
  /** Base learning rate of the group. Defaults to the stage optimizer's `lr`. */
  lr?: number;
  /** Weight decay of the group's matrices. Defaults to the stage optimizer's `weightDecay`. */
  weightDecay?: number;
}

/** The adversarial half of a stage: the discriminator steps before the generator on the same batches. */
export interface DiscriminatorSpec<B> {
  /** The discriminator, a child of the model (so it is saved in model.safetensors). */
  module: ModuleRef;
  /**
   * Discriminator loss (hinge + LeCAM, ...). Only the discriminator's parameters get gradients, so
   * the generator's forward inside it needs no stop-gradient; computing it without a tape (or via
   * `stopGradient`) only saves work.
   */
  loss: LossFn<B>;
  /** Optimizer of the discriminator. Defaults to the stage optimizer's options. */
  optimizer?: Partial<OptimizerOptions>;
  /** First global step at which the discriminator trains (VQGAN's `disc_start`). Defaults to 0. */
  startStep?: number;
}

/** Result of an evaluation hook: named numbers, logged as an `eval` line and kept in trainer.json. */
export type EvalResult = Record<string, number>;

/** One stage of the run (DESIGN.md, stages table). */
export interface Stage<B> {
  /** Unique name (`'tokenizer'`, `'alignment'`, `'semantic'`, `'post'`); checkpoints record it. */
  name: string;
  /** Optimizer steps in this stage. */
  steps: number;
  /** Modules that train; every other parameter of the model is frozen for the stage. */
  trainable: ModuleRef[];
  /** Modules inside `trainable` to keep frozen anyway (e.g. `'tokenizer.decoder'`). Defaults to none. */
  frozen?: ModuleRef[];
  /** Parameter groups with their own lr / weight decay. Ungrouped parameters form the group `default`. */
  groups?: ParamGroupSpec[];
  /** The generator's loss (everything but the discriminator). */
  loss: LossFn<B>;
  /** Optimizer of the generator side. */
  optimizer: OptimizerOptions;
  /** Learning-rate schedule over `steps`. Defaults to `{ kind: 'constant' }`. */
  schedule?: Schedule;
  /** Micro-batches per optimizer step; the loss is averaged over them. Defaults to 1. */
  gradAccumulation?: number;
  /** Clip the global gradient norm to this value (PyTorch `clip_grad_norm_`). Defaults to none. */
  clipNorm?: number;
  /** A GAN discriminator trained alongside, stepping first. Defaults to none. */
  discriminator?: DiscriminatorSpec<B>;
  /**
   * Runs on each (micro-)batch before the step, outside the gradient tape, and may `await`: data
   * work that needs a host read (e.g. stage 3 reading the image codes back from a WebGPU device).
   * What it returns is the batch the losses see; the Trainer disposes both. Defaults to none.
   */
  prepare?: (batch: B, ctx: StepContext) => B | Promise<B>;
  /** Called after every optimizer step (quantizer EMA / dead-code restart, LeCAM EMA, ...). */
  afterStep?: (ctx: StepContext) => void | Promise<void>;
  /** Run `onEval` every this many stage steps (and at the end of the stage). Defaults to never. */
  evalEvery?: number;
  /** Evaluation hook; its numbers go to the metrics log. */
  onEval?: (ctx: StepContext) => EvalResult | Promise<EvalResult>;
}

const STAGE_KEYS = [
  'name',
  'steps',
  'trainable',
  'frozen',
  'groups',
  'loss',
  'optimizer',
  'schedule',
  'gradAccumulation',
  'clipNorm',
  'discriminator',
  'prepare',
  'afterStep',
  'evalEvery',
  'onEval',
] as const;
const GROUP_KEYS = ['name', 'modules', 'lr', 'weightDecay'] as const;
const DISCRIMINATOR_KEYS = ['module', 'loss', 'optimizer', 'startStep'] as const;

function checkRefs(where: string, name: string, refs: unknown, allowEmpty: boolean): void {
  if (!Array.isArray(refs) || (!allowEmpty && refs.length === 0)) {
    throw new TrainerConfigError(
      `${where}: ${name} must be a${allowEmpty ? 'n' : ' non-empty'} array of module paths or modules, got ${JSON.stringify(refs)}`,
    );
  }
  for (const r of refs) {
    if (typeof r !== 'string' && (r === null || typeof r !== 'object' || typeof (r as Module).namedParameters !== 'function')) {
      throw new TrainerConfigError(
        `${where}: ${name} entries must be module paths (strings) or Module instances, got ${JSON.stringify(r)}`,
      );
    }
  }
}

/** Checks a stage's shape and values (not its module paths: those need the model). */
export function validateStage<B>(stage: Stage<B>, index: number): void {
  const where = `stage ${index}${stage && typeof stage.name === 'string' ? ` ("${stage.name}")` : ''}`;
  checkKnownKeys(where, stage, STAGE_KEYS);
  if (typeof stage.name !== 'string' || stage.name === '') throw new TrainerConfigError(`${where}: name must be a non-empty string`);
  checkInt(where, 'steps', stage.steps, 1);
  checkRefs(where, 'trainable', stage.trainable, false);
  if (stage.frozen !== undefined) checkRefs(where, 'frozen', stage.frozen, true);
  if (typeof stage.loss !== 'function')
    throw new TrainerConfigError(`${where}: loss must be a function (batch, ctx) => { total, components }`);
  validateOptimizerOptions(`${where} optimizer`, stage.optimizer, false);
  if (stage.schedule !== undefined) validateSchedule(`${where} schedule`, stage.schedule);
  if (stage.gradAccumulation !== undefined) checkInt(where, 'gradAccumulation', stage.gradAccumulation, 1);
  if (stage.clipNorm !== undefined) checkNumber(where, 'clipNorm', stage.clipNorm, (v) => v > 0, 'a number > 0');
  if (stage.evalEvery !== undefined) checkInt(where, 'evalEvery', stage.evalEvery, 1);
  if (stage.evalEvery !== undefined && typeof stage.onEval !== 'function') {
    throw new TrainerConfigError(`${where}: evalEvery is set but onEval is not a function`);
  }
  if (stage.prepare !== undefined && typeof stage.prepare !== 'function')
    throw new TrainerConfigError(`${where}: prepare must be a function`);
  if (stage.afterStep !== undefined && typeof stage.afterStep !== 'function')
    throw new TrainerConfigError(`${where}: afterStep must be a function`);
  const names = new Set<string>();
  for (const [i, g] of (stage.groups ?? []).entries()) {
    const gw = `${where} groups[${i}]`;
    checkKnownKeys(gw, g, GROUP_KEYS);
    if (typeof g.name !== 'string' || g.name === '' || g.name === 'default' || g.name.includes('.')) {
      throw new TrainerConfigError(
        `${gw}: name must be a non-empty string without dots, other than "default"; got ${JSON.stringify(g.name)}`,
      );
    }
    if (names.has(g.name)) throw new TrainerConfigError(`${gw}: two groups are named "${g.name}"`);
    names.add(g.name);
    checkRefs(gw, 'modules', g.modules, false);
    if (g.lr !== undefined) checkNumber(gw, 'lr', g.lr, (v) => v >= 0, 'a number >= 0');
    if (g.weightDecay !== undefined) checkNumber(gw, 'weightDecay', g.weightDecay, (v) => v >= 0, 'a number >= 0');
  }
  if (stage.discriminator !== undefined) {
    const d = stage.discriminator;
    const dw = `${where} discriminator`;
    checkKnownKeys(dw, d, DISCRIMINATOR_KEYS);
    checkRefs(dw, 'module', [d.module], false);
    if (typeof d.loss !== 'function') throw new TrainerConfigError(`${dw}: loss must be a function (batch, ctx) => { total, components }`);
    if (d.optimizer !== undefined) validateOptimizerOptions(`${dw} optimizer`, d.optimizer, true);
    if (d.startStep !== undefined) checkInt(dw, 'startStep', d.startStep, 0);
  }
}
