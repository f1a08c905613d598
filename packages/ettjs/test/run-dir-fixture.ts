// A run directory made by hand for the CLI tests: a config and one checkpoint of fresh weights per
// phase asked for, without training anything. Each phase's weights come from its own seed
// (config.seed + its position in `phases`), so a test can tell which checkpoint was loaded.
import fs from 'node:fs';
import path from 'node:path';
import { saveSafetensorsFile } from '@ettjs/core';
import { buildModel, type ExperimentConfig } from '../src/experiment';

export async function writeFreshRunDir(
  dir: string,
  config: ExperimentConfig,
  phases: readonly string[] = ['stage0-tokenizer'],
): Promise<void> {
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  for (const [i, phase] of phases.entries()) {
    const ckpt = path.join(dir, phase, 'step-00000001');
    fs.mkdirSync(ckpt, { recursive: true });
    const model = buildModel({ ...config, seed: config.seed + i }, 'ett');
    try {
      await saveSafetensorsFile(path.join(ckpt, 'model.safetensors'), model.stateDict());
    } finally {
      model.dispose();
    }
    fs.writeFileSync(path.join(ckpt, 'trainer.json'), '{}');
    fs.writeFileSync(path.join(dir, phase, 'latest'), 'step-00000001\n');
  }
}
