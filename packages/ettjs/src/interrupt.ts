// Ctrl-C during a long training run: stop after the current step with a checkpoint, not mid-step
// with nothing saved since the last one.

/**
 * Runs `work` with Ctrl-C (SIGINT) and SIGTERM turned into a clean stop: the first one aborts the
 * signal handed to `work` (pass it to `runExperiment` or `Trainer.fit`: the step in progress
 * finishes, a checkpoint is written, and `runExperiment` throws `TrainingStoppedError`); a second
 * one quits at once (exit code 130). The handlers are removed when `work` settles.
 *
 * ```ts
 * await withInterruptStop((signal) => runExperiment(config, { resume: true, signal }));
 * ```
 */
export async function withInterruptStop<T>(work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      console.error(`\n${name} again: quitting without a checkpoint of the current step`);
      process.exit(130);
    }
    console.error(`\n${name}: stopping after the current step and writing a checkpoint (${name} again quits at once)`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
