import fs from 'node:fs';
import path from 'node:path';
import { loadSafetensorsFile, safetensorsToTensors } from '@ettjs/core';
import { latestCheckpoint } from '@ettjs/trainer';
import * as tf from '@tensorflow/tfjs-core';
import type { ETTModel } from './ett-model';
import { buildModel, type ExperimentConfig, resolveExperimentConfig } from './experiment';
import { ARMS, type Arm } from './recipes';

/** Thrown when a run directory is missing, incomplete, from another config, or lacks the weights asked for. */
export class RunDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunDirError';
  }
}

/**
 * Which weights of a run: `understanding` (after stage 2 of an arm: captioning, evaluation,
 * reconstruction), `generation` (after stage 3 gen of an arm: image generation; its LM has been
 * post-trained on codes and captions worse), or the stages every arm shares, `alignment` (stage 1)
 * and `tokenizer` (stage 0).
 */
export type RunStage = 'understanding' | 'generation' | 'alignment' | 'tokenizer';
export const RUN_STAGES: readonly RunStage[] = ['understanding', 'generation', 'alignment', 'tokenizer'];

/** The stages trained once per arm; the others are shared by every arm. */
const PER_ARM: ReadonlySet<RunStage> = new Set(['understanding', 'generation']);

const STAGE_LABEL: Record<RunStage, string> = {
  understanding: 'understanding (stage 2)',
  generation: 'generation (stage 3)',
  alignment: 'alignment (stage 1)',
  tokenizer: 'tokenizer (stage 0)',
};

/** The phase directory `runExperiment` writes the weights of `stage` (and `arm`) into. */
function phaseDir(stage: RunStage, arm: Arm): string {
  switch (stage) {
    case 'understanding':
      return `stage2-${arm}`;
    case 'generation':
      return `stage3-gen-${arm}`;
    case 'alignment':
      return 'stage1-alignment';
    case 'tokenizer':
      return 'stage0-tokenizer';
  }
}

/** One set of weights a run directory holds. */
export interface RunWeights {
  stage: RunStage;
  /** The arm, for the per-arm stages (`understanding`, `generation`); absent for the shared ones. */
  arm?: Arm;
  /** The checkpoint directory holding them. */
  checkpoint: string;
}

/** Every (stage, arm) a run directory has a checkpoint for, per-arm stages first. */
export async function listRunWeights(dir: string): Promise<RunWeights[]> {
  const out: RunWeights[] = [];
  for (const stage of RUN_STAGES) {
    for (const arm of PER_ARM.has(stage) ? ARMS : [undefined]) {
      const checkpoint = await latestCheckpoint(path.join(dir, phaseDir(stage, arm ?? 'ett')));
      if (checkpoint) out.push(arm ? { stage, arm, checkpoint } : { stage, checkpoint });
    }
  }
  return out;
}

/** `understanding (stage 2): ett, frozen-embedding; tokenizer (stage 0)`. */
function describeWeights(all: readonly RunWeights[]): string {
  if (all.length === 0) return 'no checkpoint at all';
  return RUN_STAGES.filter((s) => all.some((w) => w.stage === s))
    .map((s) => {
      const arms = all.filter((w) => w.stage === s && w.arm).map((w) => w.arm);
      return arms.length > 0 ? `${STAGE_LABEL[s]}: ${arms.join(', ')}` : STAGE_LABEL[s];
    })
    .join('; ');
}

export interface LoadRunOptions {
  /** Which weights. Defaults to `understanding` (after stage 2). */
  stage?: RunStage;
  /** The arm, for `understanding` and `generation`. Defaults to `ett`; not allowed with the shared stages. */
  arm?: Arm;
}

/**
 * Rebuilds the model of a run directory written by `runExperiment` (or `ett train`) and loads
 * exactly the weights asked for: by default the `ett` arm after stage 2 (understanding). A run
 * without that (stage, arm) throws a `RunDirError` listing the ones it has; nothing falls back to
 * other weights unasked.
 */
export async function loadRun(
  dir: string,
  options: LoadRunOptions = {},
): Promise<{ model: ETTModel; config: ExperimentConfig; checkpoint: string; stage: RunStage; arm?: Arm }> {
  const stage = options.stage ?? 'understanding';
  if (!RUN_STAGES.includes(stage))
    throw new RunDirError(`loadRun: stage must be one of ${RUN_STAGES.join(', ')}, got ${JSON.stringify(stage)}`);
  if (options.arm !== undefined && !ARMS.includes(options.arm))
    throw new RunDirError(`loadRun: arm must be one of ${ARMS.join(', ')}, got ${JSON.stringify(options.arm)}`);
  const perArm = PER_ARM.has(stage);
  if (!perArm && options.arm !== undefined) {
    throw new RunDirError(`loadRun: the ${STAGE_LABEL[stage]} weights are shared by every arm; leave the arm out (ett: no --arm)`);
  }
  const arm = perArm ? (options.arm ?? 'ett') : undefined;
  const configFile = path.join(dir, 'config.json');
  if (!fs.existsSync(configFile))
    throw new RunDirError(`${dir} is not a run directory: ${configFile} is missing (create one with \`ett train\`)`);
  let config: ExperimentConfig;
  try {
    config = resolveExperimentConfig(JSON.parse(fs.readFileSync(configFile, 'utf8')));
  } catch (e) {
    throw new RunDirError(`${configFile}: ${(e as Error).message}`);
  }
  const phase = path.join(dir, phaseDir(stage, arm ?? 'ett'));
  const checkpoint = await latestCheckpoint(phase);
  if (!checkpoint) {
    const wanted = arm ? `${STAGE_LABEL[stage]} weights of the ${arm} arm` : `${STAGE_LABEL[stage]} weights`;
    const hint =
      arm && !config.arms.includes(arm)
        ? ` (its config trains the arms ${config.arms.join(', ')})`
        : stage === 'generation' && (config.steps.generation ?? 0) === 0
          ? ' (its config has steps.generation 0: train with steps.generation > 0 for generation weights)'
          : '';
    throw new RunDirError(
      `${dir} has no ${wanted} (no checkpoint in ${phase})${hint}; it has ${describeWeights(await listRunWeights(dir))}. Choose one of those (ett: --stage STAGE --arm ARM; loadRun: { stage, arm }) or train it first`,
    );
  }
  const model = buildModel(config, arm ?? 'ett');
  try {
    const tensors = safetensorsToTensors(await loadSafetensorsFile(path.join(checkpoint, 'model.safetensors')));
    try {
      model.loadStateDict(tensors);
    } finally {
      tf.dispose(Object.values(tensors));
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, config, checkpoint, stage, ...(arm ? { arm } : {}) };
}
