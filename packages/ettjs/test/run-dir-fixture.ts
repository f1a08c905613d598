// A run directory made by hand for the CLI tests: a config and one stage-0 checkpoint of fresh
// weights, without training anything.
import fs from 'node:fs';
import path from 'node:path';
import { saveSafetensorsFile } from '@ettjs/core';
import { buildModel, type ExperimentConfig } from '../src/experiment';

export async function writeFreshRunDir(dir: string, config: ExperimentConfig): Promise<void> {
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const ckpt = path.join(dir, 'stage0-tokenizer', 'step-00000001');
  fs.mkdirSync(ckpt, { recursive: true });
  const model = buildModel(config, 'ett');
  try {
    await saveSafetensorsFile(path.join(ckpt, 'model.safetensors'), model.stateDict());
  } finally {
    model.dispose();
  }
  fs.writeFileSync(path.join(ckpt, 'trainer.json'), '{}');
  fs.writeFileSync(path.join(dir, 'stage0-tokenizer', 'latest'), 'step-00000001\n');
}
