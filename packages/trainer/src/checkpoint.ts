import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Module, loadSafetensorsFile, safetensorsToTensors, saveSafetensorsFile } from '@ettjs/core';
import type * as tf from '@tensorflow/tfjs-core';

/**
 * A training checkpoint is a directory `<root>/step-<00000042>` holding
 * - `config.json`: the model config the run was started with (compared on resume),
 * - `model.safetensors`: `model.stateDict()` by dotted name (parameters and buffers),
 * - `optimizer.safetensors`: `generator.<AdamW key>` and `discriminator.<AdamW key>`,
 * - `trainer.json`: step, stage, seed, data cursor, guard counters and metrics so far.
 *
 * It is written into `<root>/.tmp-…`, every file fsynced, then renamed into place, and only then
 * does `<root>/latest` (itself replaced by rename) point at it: a crash at any moment leaves the
 * previous checkpoint complete and `latest` pointing at a complete checkpoint. Old checkpoints
 * beyond `keepLast` are deleted only after the new one is in place.
 */
export const CHECKPOINT_FILES = ['config.json', 'model.safetensors', 'optimizer.safetensors', 'trainer.json'] as const;
const LATEST = 'latest';
const PREFIX = 'step-';

/** A checkpoint that is missing, incomplete or malformed. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** A checkpoint saved from a different model config or stage list than the one resuming it. */
export class CheckpointMismatchError extends Error {
  constructor(
    readonly checkpoint: string,
    readonly differences: string[],
  ) {
    super(
      `Checkpoint ${checkpoint} does not match this run:\n${differences.map((d) => `  ${d}`).join('\n')}\n` +
        'Resume with the same model config and stages it was saved with, or start a new run in another directory.',
    );
    this.name = 'CheckpointMismatchError';
  }
}

/** One logged step (a line of metrics.jsonl with `type: 'step'`). */
export interface StepRecord {
  type: 'step';
  /** Optimizer steps completed in the run, this one included. */
  step: number;
  stage: string;
  stageStep: number;
  /** `total` and every named component of the generator loss (mean over micro-batches). */
  loss: Record<string, number>;
  /** Discriminator loss terms, when a discriminator stepped. */
  discLoss?: Record<string, number>;
  /** Learning rate of the stage optimizer's base group for this step. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  discGradNorm?: number;
  /** Plain numbers from the loss (`usage`, `perplexity`, ...). */
  stats?: Record<string, number>;
  /** Wall time of the step, milliseconds. */
  stepMs: number;
  /** `tf.memory().numTensors` after the step: flat when the loop leaks nothing. */
  numTensors: number;
  /** True when the update was skipped because the loss or a gradient was NaN/Inf. */
  skipped: boolean;
}

/** One evaluation (a line of metrics.jsonl with `type: 'eval'`). */
export interface EvalRecord {
  type: 'eval';
  step: number;
  stage: string;
  stageStep: number;
  metrics: Record<string, number>;
}

/** Contents of trainer.json. */
export interface TrainerState {
  format: 'ettjs-trainer';
  version: 1;
  /** Optimizer steps completed in the run. */
  step: number;
  /** Stage the run is in (or just finished) and its index in `stages`. */
  stage: string;
  stageIndex: number;
  /** Steps completed in that stage. */
  stageStep: number;
  /** Names of every stage of the run, in order. */
  stages: string[];
  /** Run seed; per-step seeds derive from it (see `stepSeed`), so it is the whole RNG state. */
  seed: number;
  /** `data.cursor()` after the last consumed batch. */
  dataCursor: unknown;
  /** NaN/Inf guard counters. */
  guard: { consecutive: number; skipped: number };
  /** The last step records (at most 100) and every evaluation so far. */
  metrics: { recent: StepRecord[]; evals: EvalRecord[] };
  savedAt: string;
}

export interface CheckpointContents {
  config: unknown;
  model: Module;
  optimizer: Record<string, tf.Tensor>;
  trainer: TrainerState;
}

/** Name of the checkpoint directory for a step (zero-padded, so names sort by step). */
export function checkpointName(step: number): string {
  return `${PREFIX}${String(step).padStart(8, '0')}`;
}

async function writeSynced(path: string, data: string | Uint8Array): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes a checkpoint for `trainer.step` under `root` atomically (see the file comment), updates
 * `latest`, and prunes to the newest `keepLast`. Returns the checkpoint's path.
 */
export async function writeCheckpoint(root: string, contents: CheckpointContents, options: { keepLast?: number } = {}): Promise<string> {
  await mkdir(root, { recursive: true });
  const name = checkpointName(contents.trainer.step);
  const tmp = join(root, `.tmp-${name}-${process.pid}-${Date.now().toString(36)}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  try {
    await writeSynced(join(tmp, 'config.json'), `${JSON.stringify(contents.config ?? {}, null, 2)}\n`);
    await saveSafetensorsFile(join(tmp, 'model.safetensors'), contents.model.stateDict(), { format: 'pt' });
    await syncFile(join(tmp, 'model.safetensors'));
    await saveSafetensorsFile(join(tmp, 'optimizer.safetensors'), contents.optimizer, { format: 'pt' });
    await syncFile(join(tmp, 'optimizer.safetensors'));
    // trainer.json last: a directory that has it has everything.
    await writeSynced(join(tmp, 'trainer.json'), `${JSON.stringify(contents.trainer, null, 2)}\n`);
    const final = join(root, name);
    if (await exists(final)) {
      // Same step saved again (a resumed run re-saving): move the old one aside, then swap.
      const old = join(root, `.old-${name}-${process.pid}`);
      await rename(final, old);
      await rename(tmp, final);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, final);
    }
    const latestTmp = join(root, `.${LATEST}.tmp-${process.pid}`);
    await writeSynced(latestTmp, `${name}\n`);
    await rename(latestTmp, join(root, LATEST));
    await prune(root, options.keepLast);
    return final;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Complete checkpoint directories under `root`, oldest first (temporary directories are never listed). */
export async function listCheckpoints(root: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return [];
  }
  const names = entries.filter((e) => /^step-\d{8}$/.test(e)).sort();
  const complete: string[] = [];
  for (const n of names) if (await exists(join(root, n, 'trainer.json'))) complete.push(join(root, n));
  return complete;
}

/** The checkpoint `latest` points at, else the newest complete one, else null. */
export async function latestCheckpoint(root: string): Promise<string | null> {
  try {
    const name = (await readFile(join(root, LATEST), 'utf8')).trim();
    if (/^step-\d{8}$/.test(name) && (await exists(join(root, name, 'trainer.json')))) return join(root, name);
  } catch {
    // No pointer: fall back to the listing.
  }
  const all = await listCheckpoints(root);
  return all.length > 0 ? all[all.length - 1] : null;
}

async function prune(root: string, keepLast: number | undefined): Promise<void> {
  const entries = await readdir(root);
  // Leftovers of a save that crashed (this save is complete by now; one writer per root).
  for (const e of entries) {
    if (e.startsWith('.tmp-step-') || e.startsWith('.old-step-') || e.startsWith(`.${LATEST}.tmp-`)) {
      await rm(join(root, e), { recursive: true, force: true });
    }
  }
  if (keepLast === undefined) return;
  const all = await listCheckpoints(root);
  for (const dir of all.slice(0, Math.max(0, all.length - keepLast))) await rm(dir, { recursive: true, force: true });
}

/** Reads and checks a checkpoint's JSON files. */
export async function readCheckpointMeta(dir: string): Promise<{ config: unknown; trainer: TrainerState }> {
  for (const f of CHECKPOINT_FILES) {
    if (!(await exists(join(dir, f)))) throw new CheckpointError(`${dir} is not a complete checkpoint: ${f} is missing`);
  }
  const parse = async (f: string): Promise<unknown> => {
    try {
      return JSON.parse(await readFile(join(dir, f), 'utf8'));
    } catch (e) {
      throw new CheckpointError(`${join(dir, f)} is not valid JSON (${(e as Error).message})`);
    }
  };
  const trainer = (await parse('trainer.json')) as TrainerState;
  if (trainer?.format !== 'ettjs-trainer' || trainer.version !== 1) {
    throw new CheckpointError(
      `${join(dir, 'trainer.json')} is not an @ettjs/trainer v1 state (format ${JSON.stringify(trainer?.format)}, version ${JSON.stringify(trainer?.version)})`,
    );
  }
  return { config: await parse('config.json'), trainer };
}

/** Shapes of the tensors in a checkpoint's model.safetensors (header only is used). */
export async function readModelShapes(dir: string): Promise<Record<string, number[]>> {
  const file = await loadSafetensorsFile(join(dir, 'model.safetensors'));
  return Object.fromEntries(Object.entries(file.tensors).map(([n, e]) => [n, e.shape]));
}

/** Loads a safetensors file of the checkpoint as tensors (the caller disposes them). */
export async function readCheckpointTensors(
  dir: string,
  file: 'model.safetensors' | 'optimizer.safetensors',
): Promise<Record<string, tf.Tensor>> {
  return safetensorsToTensors(await loadSafetensorsFile(join(dir, file)));
}

/** Differences between two JSON values, as `path: a → b` lines (at most 20). */
export function jsonDifferences(a: unknown, b: unknown, path = 'config'): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, p: string) => {
    if (out.length >= 20) return;
    const bothObjects = x !== null && y !== null && typeof x === 'object' && typeof y === 'object' && Array.isArray(x) === Array.isArray(y);
    if (bothObjects) {
      const keys = new Set([...Object.keys(x as object), ...Object.keys(y as object)]);
      for (const k of keys) walk((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], `${p}.${k}`);
      return;
    }
    if (JSON.stringify(x) !== JSON.stringify(y)) out.push(`${p}: checkpoint has ${JSON.stringify(x)}, this run has ${JSON.stringify(y)}`);
  };
  walk(a, b, path);
  return out;
}
