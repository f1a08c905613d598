#!/usr/bin/env node
import { runCli, UsageError } from './cli-commands';
import { TrainingStoppedError } from './experiment';

runCli(process.argv.slice(2)).catch((e: unknown) => {
  if (e instanceof UsageError) {
    console.error(`ett: ${e.message}`);
    process.exit(2);
  }
  if (e instanceof TrainingStoppedError) {
    console.error(`ett: ${e.message}`);
    process.exit(130); // as a shell reports a SIGINT
  }
  console.error(`ett: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  process.exit(1);
});
