import * as tf from '@tensorflow/tfjs-core';

/**
 * Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
 * an 8-byte little-endian header length N, N bytes of JSON header
 * (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the
 * raw little-endian tensor bytes, offsets relative to the start of that data buffer.
 *
 * Everything read from a file is checked before it is used: the header length against the file
 * size before anything is decoded, every offset against the data buffer, shapes against byte counts.
 */

/** Element types this reader understands, with their byte width. */
const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

/** One tensor as stored: dtype, shape and its raw little-endian bytes. */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw little-endian bytes. From `readSafetensors` this is a view into the input, not a copy. */
  data: Uint8Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name, in header order. */
  tensors: Record<string, SafetensorsEntry>;
  /** The `__metadata__` string map (empty when the file has none). */
  metadata: Record<string, string>;
}

/** Thrown for a malformed or unsupported safetensors file, or a tensor that cannot be written. */
export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** The reference implementation's limit: a larger header is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';
const HINT = 'The file is corrupt or not safetensors; re-export it (e.g. with safetensors.torch.save_file).';

function fail(message: string, hint = HINT): never {
  throw new SafetensorsError(`safetensors: ${message}. ${hint}`);
}

function isDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === 'string' && Object.hasOwn(DTYPE_BYTES, x);
}

/**
 * Parses safetensors bytes. The returned entries view `bytes` (no copy): keep `bytes` alive and
 * unmodified while you use them. Throws `SafetensorsError` for anything malformed.
 */
export function readSafetensors(bytes: Uint8Array): SafetensorsFile {
  if (!(bytes instanceof Uint8Array)) fail(`expected a Uint8Array, got ${Object.prototype.toString.call(bytes)}`, 'Pass the file bytes.');
  if (bytes.byteLength < 8) fail(`file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  // Checked before anything is allocated or decoded: a corrupt length must not cost memory.
  if (headerLen > BigInt(bytes.byteLength - 8)) {
    fail(`header length ${headerLen} (bytes 0..8) runs past the end of the file (${bytes.byteLength} bytes); the file may be truncated`);
  }
  if (headerLen > BigInt(MAX_HEADER_BYTES)) fail(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(headerLen);
  if (n < 2 || bytes[8] !== 0x7b /* { */) fail(`header (bytes 8..${8 + n}) does not start with "{"`);

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(`header (bytes 8..${8 + n}) is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    fail(`header is ${Array.isArray(header) ? 'an array' : String(header)}, expected a JSON object of tensor entries`);
  }

  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const parsed: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`"${METADATA_KEY}" must be an object of strings`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`"${METADATA_KEY}.${k}" is ${JSON.stringify(v)}, metadata values must be strings`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(`entry "${name}" is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (dtype === undefined) fail(`entry "${name}" has no "dtype"`);
    if (shape === undefined) fail(`entry "${name}" has no "shape"`);
    if (offsets === undefined) fail(`entry "${name}" has no "data_offsets"`);
    if (!isDtype(dtype)) {
      fail(
        `tensor "${name}" has dtype ${JSON.stringify(dtype)}, which this reader does not support`,
        `Supported: ${Object.keys(DTYPE_BYTES).join(', ')}; convert the tensor before saving.`,
      );
    }
    if (!Array.isArray(shape)) fail(`tensor "${name}" has shape ${JSON.stringify(shape)}, expected an array of dimensions`);
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0)
        fail(`tensor "${name}" has shape ${JSON.stringify(shape)}: dimensions must be non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`tensor "${name}" has data_offsets ${JSON.stringify(offsets)}, expected [begin, end] non-negative integers`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`tensor "${name}" has data_offsets [${begin}, ${end}] with begin after end`);
    if (end > dataLen) {
      fail(
        `tensor "${name}" data_offsets [${begin}, ${end}] run past the data buffer (${dataLen} bytes after the header); the file may be truncated`,
      );
    }
    // Element count checked against the byte count with a cap, so absurd shapes cannot overflow.
    const count = elementCount(shape as number[], dataLen);
    const expectedBytes = count * DTYPE_BYTES[dtype];
    if (expectedBytes !== end - begin) {
      fail(`tensor "${name}" (${dtype} [${shape}]) needs ${expectedBytes} bytes but data_offsets [${begin}, ${end}] give ${end - begin}`);
    }
    parsed.push({ name, dtype, shape: [...(shape as number[])], begin, end });
  }

  // The spec requires the entries to tile the data buffer exactly: no overlap, no hole, no tail.
  const sorted = [...parsed].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev = '';
  for (const e of sorted) {
    if (e.begin < cursor) fail(`tensor "${e.name}" data_offsets [${e.begin}, ${e.end}] overlap tensor "${prev}" (which ends at ${cursor})`);
    if (e.begin > cursor) fail(`data buffer has a gap at offset ${cursor}..${e.begin} before tensor "${e.name}"`);
    cursor = e.end;
    prev = e.name;
  }
  if (cursor !== dataLen) fail(`data buffer has ${dataLen - cursor} unused byte(s) after offset ${cursor} not covered by any tensor`);

  const tensors: Record<string, SafetensorsEntry> = {};
  for (const e of parsed) {
    tensors[e.name] = { dtype: e.dtype, shape: e.shape, data: bytes.subarray(dataStart + e.begin, dataStart + e.end) };
  }
  return { tensors, metadata };
}

/** Product of `shape`, capped just above `cap` so an absurd shape cannot overflow to a plausible number. */
function elementCount(shape: number[], cap: number): number {
  if (shape.includes(0)) return 0;
  let count = 1;
  for (const d of shape) {
    count *= d;
    if (count > cap) return cap + 1;
  }
  return count;
}

/** Typed arrays use the platform's byte order; safetensors is little-endian (so is every JS engine in use). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Whether 4-byte elements can be copied with a typed-array view instead of a DataView loop. */
function canView4(bytes: Uint8Array): boolean {
  return LITTLE_ENDIAN && bytes.byteOffset % 4 === 0;
}

let f16Table: Float32Array | undefined;

/** float32 value of every IEEE half bit pattern, built once (256 KiB) on first F16 read. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 31) t[h] = mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  f16Table = t;
  return t;
}

/** Values of a tensor entry in the tfjs dtype it maps to. */
export interface DecodedEntry {
  dtype: 'float32' | 'int32' | 'bool';
  values: Float32Array | Int32Array | Uint8Array;
}

/**
 * Decodes an entry to tfjs values: F64/F32/F16/BF16 to float32 (F64 is rounded), integer types to
 * int32 (throws if a value does not fit: tfjs has no 64-bit integers), BOOL to bool.
 */
export function decodeSafetensorsEntry(name: string, entry: SafetensorsEntry): DecodedEntry {
  const { dtype, data } = entry;
  const width = DTYPE_BYTES[dtype];
  if (width === undefined) fail(`tensor "${name}" has unsupported dtype ${dtype}`);
  const n = data.byteLength / width;
  if (elementCount(entry.shape, n) !== n)
    fail(`tensor "${name}" (${dtype} [${entry.shape}]) has ${data.byteLength} bytes, which does not match its shape`);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (dtype) {
    case 'F32': {
      if (canView4(data)) return { dtype: 'float32', values: new Float32Array(data.buffer, data.byteOffset, n).slice() };
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return { dtype: 'float32', values: out };
    }
    case 'F64': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return { dtype: 'float32', values: out };
    }
    case 'F16': {
      const table = halfTable();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(i * 2, true)];
      return { dtype: 'float32', values: out };
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
      return { dtype: 'float32', values: new Float32Array(bits.buffer) };
    }
    case 'I32': {
      if (canView4(data)) return { dtype: 'int32', values: new Int32Array(data.buffer, data.byteOffset, n).slice() };
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      return { dtype: 'int32', values: out };
    }
    case 'I64':
    case 'U64': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = dtype === 'I64' ? dv.getBigInt64(i * 8, true) : dv.getBigUint64(i * 8, true);
        if (v < -2147483648n || v > 2147483647n) {
          fail(
            `tensor "${name}" (${dtype}) element ${i} is ${v}, outside the int32 range tfjs supports`,
            'Store indices that fit in int32, or read the raw bytes from readSafetensors yourself.',
          );
        }
        out[i] = Number(v);
      }
      return { dtype: 'int32', values: out };
    }
    case 'U32': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = dv.getUint32(i * 4, true);
        if (v > 2147483647)
          fail(`tensor "${name}" (U32) element ${i} is ${v}, outside the int32 range tfjs supports`, 'Store values that fit in int32.');
        out[i] = v;
      }
      return { dtype: 'int32', values: out };
    }
    case 'I16':
    case 'U16': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = dtype === 'I16' ? dv.getInt16(i * 2, true) : dv.getUint16(i * 2, true);
      return { dtype: 'int32', values: out };
    }
    case 'I8':
      return { dtype: 'int32', values: Int32Array.from(new Int8Array(data.buffer, data.byteOffset, n)) };
    case 'U8':
      return { dtype: 'int32', values: Int32Array.from(data) };
    case 'BOOL': {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = data[i] ? 1 : 0;
      return { dtype: 'bool', values: out };
    }
  }
}

/** Makes a tf tensor from one entry (see `decodeSafetensorsEntry` for the dtype mapping). */
export function safetensorsEntryToTensor(name: string, entry: SafetensorsEntry): tf.Tensor {
  const { dtype, values } = decodeSafetensorsEntry(name, entry);
  return tf.tensor(values, entry.shape, dtype);
}

/**
 * Makes tf tensors from a parsed file: float types become float32, integer types int32, BOOL bool.
 * `names` restricts the result (unknown names throw). The caller owns (and disposes) the tensors.
 */
export function safetensorsToTensors(file: SafetensorsFile, options: { names?: string[] } = {}): Record<string, tf.Tensor> {
  const names = options.names ?? Object.keys(file.tensors);
  for (const name of names) {
    if (!Object.hasOwn(file.tensors, name)) {
      fail(
        `no tensor "${name}" in the file (it has ${Object.keys(file.tensors).length}: ${Object.keys(file.tensors).slice(0, 10).join(', ')}...)`,
        'Check the tensor name.',
      );
    }
  }
  // Decode everything before creating any tensor, so a failure leaks nothing.
  const decoded = names.map((name) => [name, decodeSafetensorsEntry(name, file.tensors[name])] as const);
  return Object.fromEntries(decoded.map(([name, { dtype, values }]) => [name, tf.tensor(values, file.tensors[name].shape, dtype)]));
}

const TF_TO_SAFETENSORS: Partial<Record<tf.DataType, SafetensorsDtype>> = { float32: 'F32', int32: 'I32', bool: 'BOOL' };

function checkWritable(tensors: Record<string, tf.Tensor>, metadata: Record<string, string> | undefined): void {
  if (tensors === null || typeof tensors !== 'object') fail('expected a record of tensors by name', 'Pass { name: tensor }.');
  for (const [name, t] of Object.entries(tensors)) {
    if (!name) fail('a tensor has an empty name', 'Give every tensor a non-empty name.');
    if (name === METADATA_KEY) fail(`"${METADATA_KEY}" is reserved for metadata`, 'Rename the tensor.');
    if (!(t instanceof tf.Tensor)) fail(`"${name}" is not a tf.Tensor`, 'Pass tf tensors.');
    if (t.isDisposed) fail(`tensor "${name}" is disposed`, 'Save before disposing.');
    if (!TF_TO_SAFETENSORS[t.dtype])
      fail(`tensor "${name}" has dtype ${t.dtype}, which cannot be written`, 'Cast it to float32 or int32 first.');
  }
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (typeof v !== 'string') fail(`metadata "${k}" is ${typeof v}, metadata values must be strings`, 'JSON.stringify structured values.');
  }
}

function encode(
  entries: { name: string; dtype: SafetensorsDtype; shape: number[]; values: Float32Array | Int32Array | Uint8Array }[],
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header[METADATA_KEY] = metadata;
  let offset = 0;
  for (const e of sorted) {
    const size = e.values.byteLength;
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // The spec pads the header with spaces so the data buffer starts 8-byte aligned.
  const headerLen = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const e of sorted) {
    const v = e.values;
    if (LITTLE_ENDIAN && pos % 4 === 0 && !(v instanceof Uint8Array)) {
      (v instanceof Float32Array ? new Float32Array(out.buffer, pos, v.length) : new Int32Array(out.buffer, pos, v.length)).set(v);
    } else if (v instanceof Float32Array) for (let i = 0; i < v.length; i++) dv.setFloat32(pos + i * 4, v[i], true);
    else if (v instanceof Int32Array) for (let i = 0; i < v.length; i++) dv.setInt32(pos + i * 4, v[i], true);
    else out.set(v, pos);
    pos += v.byteLength;
  }
  return out;
}

function entryFromValues(name: string, t: tf.Tensor, values: tf.TypedArray | string[]) {
  const dtype = TF_TO_SAFETENSORS[t.dtype] as SafetensorsDtype;
  // dataSync/data give Float32Array, Int32Array or Uint8Array for these three dtypes.
  return { name, dtype, shape: [...t.shape], values: values as Float32Array | Int32Array | Uint8Array };
}

/**
 * Serializes tensors (float32 → F32, int32 → I32, bool → BOOL), sorted by name, header padded
 * to 8 bytes. Reads tensor values synchronously (`dataSync`); `saveSafetensorsFile` reads them
 * asynchronously. The tensors are not disposed.
 */
export function writeSafetensors(tensors: Record<string, tf.Tensor>, metadata?: Record<string, string>): Uint8Array {
  checkWritable(tensors, metadata);
  return encode(
    Object.entries(tensors).map(([name, t]) => entryFromValues(name, t, t.dataSync())),
    metadata,
  );
}

/** Reads and parses a safetensors file (Node). Entries view the file bytes. */
export async function loadSafetensorsFile(path: string): Promise<SafetensorsFile> {
  const { readFile } = await import('node:fs/promises');
  const buf = await readFile(path);
  try {
    return readSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (e) {
    if (e instanceof SafetensorsError) throw new SafetensorsError(`${path}: ${e.message}`);
    throw e;
  }
}

/**
 * Writes tensors to `path` (Node): the bytes go to a temporary file in the same directory that is
 * then renamed over `path`, so a crash never leaves a half-written file behind. The tensors are
 * not disposed.
 */
export async function saveSafetensorsFile(
  path: string,
  tensors: Record<string, tf.Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  checkWritable(tensors, metadata);
  const entries = [];
  for (const [name, t] of Object.entries(tensors)) entries.push(entryFromValues(name, t, await t.data()));
  const bytes = encode(entries, metadata);
  const { writeFile, rename, rm } = await import('node:fs/promises');
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
