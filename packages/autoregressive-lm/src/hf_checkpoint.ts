import { loadSafetensorsFile, SafetensorsError, safetensorsToTensors, saveSafetensorsFile } from '@ettjs/core';
import type * as tf from '@tensorflow/tfjs-core';
import { type LMConfig, LMConfigError, lmConfigToHF } from './config';

/**
 * HF checkpoint directories on disk (Node): `config.json` plus `model.safetensors`, or shards
 * `model-0000i-of-0000n.safetensors` listed in `model.safetensors.index.json` (`weight_map`).
 */

const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
const SHARD = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** A checkpoint directory that is missing files or holds malformed ones. */
export class HFCheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HFCheckpointError';
  }
}

async function listDir(dir: string): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  try {
    return await readdir(dir);
  } catch (e) {
    throw new HFCheckpointError(`${dir}: cannot read the checkpoint directory (${(e as Error).message})`);
  }
}

/** Parses `dir/config.json`. */
export async function readHFConfig(dir: string): Promise<unknown> {
  const { readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new HFCheckpointError(
      `${path}: not found (files: ${(await listDir(dir)).join(', ') || 'none'}); an HF model directory needs config.json`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new LMConfigError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Reads every weight of an HF directory as float32/int32 tensors by HF name (single file or
 * sharded). The caller disposes them. A corrupt file throws `SafetensorsError` naming the file.
 */
export async function readHFWeights(dir: string): Promise<Record<string, tf.Tensor>> {
  const { readFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  const files = await listDir(dir);
  if (files.includes(INDEX)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(await readFile(join(dir, INDEX), 'utf8'));
    } catch (e) {
      throw new HFCheckpointError(`${join(dir, INDEX)}: not valid JSON (${(e as Error).message})`);
    }
    const map = index.weight_map;
    if (!map || typeof map !== 'object') throw new HFCheckpointError(`${join(dir, INDEX)}: no "weight_map" object`);
    const byFile = new Map<string, string[]>();
    for (const [name, file] of Object.entries(map)) {
      if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) {
        throw new HFCheckpointError(
          `${join(dir, INDEX)}: weight_map["${name}"] must be a file name in the directory, got ${JSON.stringify(file)}`,
        );
      }
      byFile.set(file, [...(byFile.get(file) ?? []), name]);
    }
    const out: Record<string, tf.Tensor> = {};
    try {
      for (const [file, names] of byFile) {
        if (!files.includes(file)) throw new HFCheckpointError(`${dir}: shard "${file}" listed in ${INDEX} is missing`);
        const parsed = await loadSafetensorsFile(join(dir, file));
        const absent = names.filter((n) => !Object.hasOwn(parsed.tensors, n));
        if (absent.length > 0)
          throw new HFCheckpointError(`${join(dir, file)}: ${INDEX} maps ${absent.join(', ')} to this shard, which lacks them`);
        Object.assign(out, safetensorsToTensors(parsed, { names }));
      }
    } catch (e) {
      for (const t of Object.values(out)) t.dispose();
      throw e;
    }
    return out;
  }
  if (!files.includes(SINGLE)) {
    throw new HFCheckpointError(
      `${dir}: no ${SINGLE} or ${INDEX} (files: ${files.join(', ') || 'none'}); save the model with safetensors (HF save_pretrained default)`,
    );
  }
  const parsed = await loadSafetensorsFile(join(dir, SINGLE));
  return safetensorsToTensors(parsed);
}

/**
 * Writes config.json and the weights; with `maxShardBytes`, shards of at most that size (a tensor
 * larger than the limit gets its own shard, as HF does) plus the index. Each file is written to a
 * temporary name and renamed; weight files of the other layout left from an earlier save are removed
 * so the directory never holds two disagreeing checkpoints.
 */
export async function writeHFCheckpoint(
  dir: string,
  config: Required<LMConfig>,
  tensors: Record<string, tf.Tensor>,
  maxShardBytes?: number,
): Promise<void> {
  if (maxShardBytes !== undefined && !(Number.isInteger(maxShardBytes) && maxShardBytes > 0)) {
    throw new HFCheckpointError(`savePretrained: maxShardBytes must be a positive integer, got ${maxShardBytes}`);
  }
  const json = lmConfigToHF(config);
  const { mkdir, rename, rm, writeFile } = await import('node:fs/promises');
  const { join } = await import('node:path');
  await mkdir(dir, { recursive: true });
  const stale = (await listDir(dir)).filter((f) => f === SINGLE || f === INDEX || SHARD.test(f));
  const names = Object.keys(tensors).sort();
  const bytes = (n: string) => tensors[n].size * 4;
  const shards: string[][] = [];
  if (maxShardBytes === undefined) {
    shards.push(names);
  } else {
    let size = 0;
    for (const n of names) {
      if (shards.length === 0 || (size + bytes(n) > maxShardBytes && size > 0)) {
        shards.push([]);
        size = 0;
      }
      shards[shards.length - 1].push(n);
      size += bytes(n);
    }
  }
  const written: string[] = [];
  const metadata = { format: 'pt' }; // HF's loader expects this tag on safetensors checkpoints
  try {
    if (shards.length === 1 && maxShardBytes === undefined) {
      await saveSafetensorsFile(join(dir, SINGLE), tensors, metadata);
      written.push(SINGLE);
    } else {
      const weightMap: Record<string, string> = {};
      for (let i = 0; i < shards.length; i++) {
        const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
        await saveSafetensorsFile(join(dir, file), Object.fromEntries(shards[i].map((n) => [n, tensors[n]])), metadata);
        written.push(file);
        for (const n of shards[i]) weightMap[n] = file;
      }
      const total = names.reduce((s, n) => s + bytes(n), 0);
      await writeAtomic(join(dir, INDEX), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
      written.push(INDEX);
    }
    await writeAtomic(join(dir, 'config.json'), JSON.stringify(json, null, 2));
  } catch (e) {
    if (e instanceof SafetensorsError) throw new HFCheckpointError(`savePretrained: ${e.message}`);
    throw e;
  }
  for (const f of stale) if (!written.includes(f)) await rm(join(dir, f), { force: true });

  async function writeAtomic(path: string, text: string): Promise<void> {
    const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
    await writeFile(tmp, text);
    await rename(tmp, path);
  }
}
