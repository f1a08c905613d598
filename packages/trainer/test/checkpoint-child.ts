// Child process for the crash test: writes checkpoint 1, then starts checkpoint 2 and gets killed
// by the parent while it is being written. Bundled with esbuild at test time.
import '@tensorflow/tfjs-backend-cpu';
import { Module } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { type TrainerState, writeCheckpoint } from '../src/checkpoint';

class Big extends Module {
  readonly w: tf.Variable;
  constructor(n: number) {
    super();
    this.w = this.addParameter('w', tf.fill([n], 1));
  }
}

function state(step: number): TrainerState {
  return {
    format: 'ettjs-trainer',
    version: 1,
    step,
    stage: 's',
    stageIndex: 0,
    stageStep: step,
    stages: ['s'],
    seed: 0,
    dataCursor: { index: step },
    guard: { consecutive: 0, skipped: 0 },
    metrics: { recent: [], evals: [] },
    savedAt: new Date().toISOString(),
  };
}

async function main(): Promise<void> {
  const [dir, size] = process.argv.slice(2);
  const n = Number(size);
  await tf.setBackend('cpu');
  const model = new Big(n);
  await writeCheckpoint(dir, { config: { n }, model, optimizer: {}, trainer: state(1) });
  process.stdout.write('saved-1\n');
  tf.tidy(() => model.w.assign(tf.fill([n], 2)));
  process.stdout.write('saving-2\n');
  await writeCheckpoint(dir, { config: { n }, model, optimizer: {}, trainer: state(2) });
  process.stdout.write('saved-2\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
