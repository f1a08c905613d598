import { loadSafetensorsFile, type Module, safetensorsToTensors, saveSafetensorsFile } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * The adapters' checkpoint: a directory with `config.json` (`{"kind": "projector" | "index", ...config}`)
 * and `model.safetensors` (the state dict by dotted name, float32). Both adapters share it, so
 * `loadVisualAdapter(dir)` can rebuild whichever was saved.
 */
export const ADAPTER_CONFIG_FILE = 'config.json';
export const ADAPTER_WEIGHTS_FILE = 'model.safetensors';

export type AdapterKind = 'projector' | 'index';

/** A checkpoint directory that is missing, malformed, or holds the other kind of adapter. */
export class AdapterCheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterCheckpointError';
  }
}

/** Writes config.json and model.safetensors into `dir` (created if needed); each file lands via rename. */
export async function saveAdapterCheckpoint(dir: string, kind: AdapterKind, config: object, module: Module): Promise<void> {
  const { mkdir, writeFile, rename } = await import('node:fs/promises');
  await mkdir(dir, { recursive: true });
  await saveSafetensorsFile(`${dir}/${ADAPTER_WEIGHTS_FILE}`, module.stateDict(), { format: 'pt', ettjs_adapter: kind });
  const configPath = `${dir}/${ADAPTER_CONFIG_FILE}`;
  const tmp = `${configPath}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify({ kind, ...config }, null, 2)}\n`);
  await rename(tmp, configPath);
}

/** Reads `dir/config.json` and returns its kind and the rest of the config. */
export async function readAdapterConfig(dir: string): Promise<{ kind: AdapterKind; config: Record<string, unknown> }> {
  const { readFile } = await import('node:fs/promises');
  const path = `${dir}/${ADAPTER_CONFIG_FILE}`;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new AdapterCheckpointError(
      `no adapter checkpoint at ${dir}: cannot read ${ADAPTER_CONFIG_FILE} (${(e as Error).message}). Save one with savePretrained(dir).`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new AdapterCheckpointError(`${path} is not valid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new AdapterCheckpointError(`${path} must hold a JSON object, got ${JSON.stringify(parsed)}`);
  }
  const { kind, ...config } = parsed as Record<string, unknown>;
  if (kind !== 'projector' && kind !== 'index') {
    throw new AdapterCheckpointError(`${path}: "kind" must be "projector" or "index", got ${JSON.stringify(kind)}`);
  }
  return { kind, config };
}

/**
 * Loads `dir/model.safetensors` into `module` strictly (every tensor present with the right shape,
 * nothing extra). On any failure the module is disposed, so a failed `fromPretrained` leaks nothing.
 */
export async function loadAdapterWeights<M extends Module>(dir: string, module: M): Promise<M> {
  try {
    const file = await loadSafetensorsFile(`${dir}/${ADAPTER_WEIGHTS_FILE}`);
    const tensors = safetensorsToTensors(file);
    try {
      module.loadStateDict(tensors);
    } finally {
      tf.dispose(Object.values(tensors));
    }
    return module;
  } catch (e) {
    module.dispose();
    throw e;
  }
}

/** Throws unless the checkpoint in `dir` holds the `expected` kind. */
export function expectKind(dir: string, got: AdapterKind, expected: AdapterKind, className: string): void {
  if (got !== expected) {
    throw new AdapterCheckpointError(
      `${className}.fromPretrained(${dir}): the checkpoint holds a "${got}" adapter, not "${expected}". Use loadVisualAdapter(dir) to load whichever kind was saved.`,
    );
  }
}
