import fs from 'node:fs';
import path from 'node:path';
import { loadSafetensorsFile, safetensorsToTensors } from '@ettjs/core';
import { latestCheckpoint } from '@ettjs/trainer';
import * as tf from '@tensorflow/tfjs-core';
import type { ETTModel } from './ett-model';
import { buildModel, type ExperimentConfig, resolveExperimentConfig } from './experiment';
import type { Arm } from './recipes';

/** Thrown when a run directory is missing, incomplete or from another config. */
export class RunDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunDirError';
  }
}

/** The phase directories of a run, latest first: stage 3 (generation) and 2 of the arm, then stage 1, then stage 0. */
function phaseDirs(dir: string, arm: Arm): string[] {
  return [`stage3-gen-${arm}`, `stage2-${arm}`, 'stage1-alignment', 'stage0-tokenizer'].map((d) => path.join(dir, d));
}

/**
 * Rebuilds the model of a run directory written by `runExperiment` (or `ett train`) and loads the
 * newest weights it has for `arm`: after stage 3 (generation) or 2 when that arm ran, else after stage 1 or 0.
 */
export async function loadRun(dir: string, arm: Arm = 'ett'): Promise<{ model: ETTModel; config: ExperimentConfig; checkpoint: string }> {
  const configFile = path.join(dir, 'config.json');
  if (!fs.existsSync(configFile))
    throw new RunDirError(`${dir} is not a run directory: ${configFile} is missing (create one with \`ett train\`)`);
  let config: ExperimentConfig;
  try {
    config = resolveExperimentConfig(JSON.parse(fs.readFileSync(configFile, 'utf8')));
  } catch (e) {
    throw new RunDirError(`${configFile}: ${(e as Error).message}`);
  }
  let checkpoint: string | null = null;
  for (const d of phaseDirs(dir, arm)) {
    checkpoint = fs.existsSync(d) ? await latestCheckpoint(d) : null;
    if (checkpoint) break;
  }
  if (!checkpoint) throw new RunDirError(`${dir} has no checkpoint yet (looked in ${phaseDirs(dir, arm).join(', ')}); train first`);
  const model = buildModel(config, arm);
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
  return { model, config, checkpoint };
}
