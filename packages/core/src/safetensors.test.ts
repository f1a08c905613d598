import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loadSafetensorsFile,
  MAX_HEADER_BYTES,
  readSafetensors,
  SafetensorsError,
  safetensorsEntryToTensor,
  safetensorsToTensors,
  saveSafetensorsFile,
  writeSafetensors,
} from './safetensors';

/**
 * An independent writer for fixtures: header JSON exactly as given (no padding unless asked), then
 * the data bytes. Offsets are written by the test, so the reader is checked against bytes that our
 * writer never produced.
 */
function file(header: unknown, data: Uint8Array = new Uint8Array(0), headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function bytesOf(fill: (dv: DataView) => void, n: number): Uint8Array {
  const b = new Uint8Array(n);
  fill(new DataView(b.buffer));
  return b;
}

async function values(t: tf.Tensor): Promise<number[]> {
  const v = Array.from(await t.data());
  return v as number[];
}

function expectError(bytes: Uint8Array, pattern: RegExp): void {
  let err: unknown;
  try {
    readSafetensors(bytes);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafetensorsError);
  expect((err as Error).message).toMatch(pattern);
  // Every message tells the user what to do next.
  expect((err as Error).message).toMatch(/re-export|Supported|convert/i);
}

describe('readSafetensors on a hand-written fixture', () => {
  // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), 2^-14 (smallest normal), 0x3555 (≈1/3), +inf, -inf, NaN.
  const f16 = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x7c00, 0xfc00, 0x7e00];
  const f16Expected = [1, -2, 65504, 2 ** -24, 2 ** -14, 0.333251953125, Infinity, -Infinity, Number.NaN];
  // BF16: 1, -5, 3.140625, 2^-133 (a float32 subnormal).
  const bf16 = [0x3f80, 0xc0a0, 0x4049, 0x0001];
  const bf16Expected = [1, -5, 3.140625, 2 ** -133];
  const i64 = [-3n, 2147483647n, -2147483648n, 0n];
  const f32 = [0.5, -1.25, 3e-8];
  const f64 = [0.1, -2.5];

  // Laid out in a deliberately odd order (data order ≠ header order) and with an odd-length,
  // unpadded header so every tensor starts at an unaligned address.
  const parts: [string, string, number[], Uint8Array][] = [
    [
      'h',
      'F16',
      [3, 3],
      bytesOf(
        (dv) =>
          f16.forEach((h, i) => {
            dv.setUint16(i * 2, h, true);
          }),
        18,
      ),
    ],
    [
      'b',
      'BF16',
      [2, 2],
      bytesOf(
        (dv) =>
          bf16.forEach((h, i) => {
            dv.setUint16(i * 2, h, true);
          }),
        8,
      ),
    ],
    [
      'idx',
      'I64',
      [4],
      bytesOf(
        (dv) =>
          i64.forEach((v, i) => {
            dv.setBigInt64(i * 8, v, true);
          }),
        32,
      ),
    ],
    [
      'w',
      'F32',
      [3],
      bytesOf(
        (dv) =>
          f32.forEach((v, i) => {
            dv.setFloat32(i * 4, v, true);
          }),
        12,
      ),
    ],
    [
      'd',
      'F64',
      [2, 1],
      bytesOf(
        (dv) =>
          f64.forEach((v, i) => {
            dv.setFloat64(i * 8, v, true);
          }),
        16,
      ),
    ],
    [
      'n',
      'I32',
      [2],
      bytesOf(
        (dv) =>
          [-7, 123456789].forEach((v, i) => {
            dv.setInt32(i * 4, v, true);
          }),
        8,
      ),
    ],
    ['s8', 'I8', [2], new Uint8Array([0x80, 0x7f])],
    ['u8', 'U8', [3], new Uint8Array([0, 200, 255])],
    ['mask', 'BOOL', [3], new Uint8Array([1, 0, 1])],
    ['scalar', 'F32', [], bytesOf((dv) => dv.setFloat32(0, 42, true), 4)],
    ['empty', 'F32', [0, 4], new Uint8Array(0)],
  ];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'hand-made' } };
  const data = new Uint8Array(parts.reduce((s, p) => s + p[3].length, 0));
  let off = 0;
  for (const [name, dtype, shape, b] of parts) {
    header[name] = { dtype, shape, data_offsets: [off, off + b.length] };
    data.set(b, off);
    off += b.length;
  }
  let headerText = JSON.stringify(header);
  if (headerText.length % 2 === 0) headerText += ' ';
  const bytes = file(undefined, data, headerText);

  it('parses entries, shapes and metadata', () => {
    const f = readSafetensors(bytes);
    expect(Object.keys(f.tensors)).toEqual(parts.map((p) => p[0]));
    expect(f.metadata).toEqual({ format: 'pt', note: 'hand-made' });
    expect(f.tensors.h.dtype).toBe('F16');
    expect(f.tensors.h.shape).toEqual([3, 3]);
    expect(f.tensors.h.data.byteLength).toBe(18);
  });

  it('decodes F16 and BF16 bit patterns to their exact float32 values', async () => {
    const t = safetensorsToTensors(readSafetensors(bytes), { names: ['h', 'b'] });
    expect(t.h.dtype).toBe('float32');
    expect(t.h.shape).toEqual([3, 3]);
    expect(await values(t.h)).toEqual(f16Expected);
    expect(t.b.shape).toEqual([2, 2]);
    expect(await values(t.b)).toEqual(bf16Expected);
    tf.dispose(t);
  });

  it('decodes F32, F64 (rounded to float32), integers to int32 and BOOL to bool', async () => {
    const t = safetensorsToTensors(readSafetensors(bytes));
    expect(await values(t.w)).toEqual(f32.map(Math.fround));
    expect(await values(t.d)).toEqual(f64.map(Math.fround));
    expect(t.d.shape).toEqual([2, 1]);
    expect(t.idx.dtype).toBe('int32');
    expect(await values(t.idx)).toEqual([-3, 2147483647, -2147483648, 0]);
    expect(await values(t.n)).toEqual([-7, 123456789]);
    expect(await values(t.s8)).toEqual([-128, 127]);
    expect(await values(t.u8)).toEqual([0, 200, 255]);
    expect(t.mask.dtype).toBe('bool');
    expect(await values(t.mask)).toEqual([1, 0, 1]);
    expect(t.scalar.shape).toEqual([]);
    expect(await values(t.scalar)).toEqual([42]);
    expect(t.empty.shape).toEqual([0, 4]);
    tf.dispose(t);
  });

  it('rejects I64 values outside int32 naming the tensor and element, creating no tensor', () => {
    const big = file(
      { idx: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } },
      bytesOf((dv) => {
        dv.setBigInt64(0, 1n, true);
        dv.setBigInt64(8, 2147483648n, true);
      }, 16),
    );
    const f = readSafetensors(big);
    expect(() => safetensorsToTensors(f)).toThrow(/"idx" \(I64\) element 1 is 2147483648, outside the int32 range/);
    expect(() => safetensorsEntryToTensor('idx', f.tensors.idx)).toThrow(SafetensorsError);
  });

  it('throws for a requested name the file does not have', () => {
    expect(() => safetensorsToTensors(readSafetensors(bytes), { names: ['nope'] })).toThrow(/no tensor "nope"/);
  });
});

describe('readSafetensors rejects malformed files', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const eight = new Uint8Array(8);

  it('files shorter than 8 bytes', () => {
    expectError(new Uint8Array(0), /0 bytes, shorter than the 8-byte header length/);
    expectError(new Uint8Array(7), /7 bytes/);
  });

  it('a header length past the end of the file, without allocating it', () => {
    const b = file(ok, eight);
    new DataView(b.buffer).setBigUint64(0, 2n ** 63n, true);
    expectError(b, /header length 9223372036854775808 .* runs past the end of the file/);
    const c = file(ok, eight);
    new DataView(c.buffer).setBigUint64(0, BigInt(c.length - 7), true);
    expectError(c, /runs past the end/);
  });

  it('a header length above the limit', () => {
    const b = new Uint8Array(8 + MAX_HEADER_BYTES + 8);
    new DataView(b.buffer).setBigUint64(0, BigInt(MAX_HEADER_BYTES + 1), true);
    expectError(b, /exceeds the 100000000-byte limit/);
  });

  it('invalid JSON, invalid UTF-8, and a header that is not an object', () => {
    expectError(file(undefined, eight, '{"a": '), /not valid UTF-8 JSON/);
    const badUtf8 = file(undefined, undefined, '{"a":"??"}');
    badUtf8.set([0xc3, 0xff], 8 + 6); // a lead byte followed by a byte that cannot continue it
    expectError(badUtf8, /UTF-8 JSON/);
    expectError(file([1, 2]), /does not start with "\{"/);
    expectError(file(undefined, undefined, '  {}'), /does not start with "\{"/);
    expectError(file(undefined, undefined, ''), /does not start with "\{"/);
  });

  it('entries missing dtype, shape or data_offsets, or not objects', () => {
    expectError(file({ a: { shape: [2], data_offsets: [0, 8] } }, eight), /entry "a" has no "dtype"/);
    expectError(file({ a: { dtype: 'F32', data_offsets: [0, 8] } }, eight), /entry "a" has no "shape"/);
    expectError(file({ a: { dtype: 'F32', shape: [2] } }, eight), /entry "a" has no "data_offsets"/);
    expectError(file({ a: 3 }, eight), /entry "a" is not an object/);
    expectError(file({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, eight), /"a" has data_offsets \[0\]/);
    expectError(file({ a: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, eight), /data_offsets \[-8,0\]/);
  });

  it('unknown dtypes, listing the supported ones', () => {
    expectError(
      file({ a: { dtype: 'F8_E4M3', shape: [8], data_offsets: [0, 8] } }, eight),
      /"a" has dtype "F8_E4M3".*Supported: F64, F32, F16, BF16/,
    );
  });

  it('negative, non-integer or non-array shapes', () => {
    expectError(file({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, eight), /"a" has shape \[-2\].*non-negative integers/);
    expectError(file({ a: { dtype: 'F32', shape: [1.5, 2], data_offsets: [0, 8] } }, eight), /shape \[1.5,2\]/);
    expectError(file({ a: { dtype: 'F32', shape: '2', data_offsets: [0, 8] } }, eight), /expected an array/);
  });

  it('shape and byte count that disagree, including absurd shapes', () => {
    expectError(
      file({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, eight),
      /"a" \(F32 \[3\]\) needs 12 bytes but data_offsets \[0, 8\] give 8/,
    );
    expectError(file({ a: { dtype: 'F16', shape: [2], data_offsets: [0, 8] } }, eight), /needs 4 bytes/);
    expectError(file({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40, 2 ** 40], data_offsets: [0, 8] } }, eight), /"a" \(F32/);
  });

  it('out-of-range, reversed, overlapping and non-contiguous offsets', () => {
    expectError(
      file({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, eight),
      /"a" data_offsets \[0, 16\] run past the data buffer \(8 bytes/,
    );
    expectError(file({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, eight), /begin after end/);
    const two = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    };
    expectError(file(two, new Uint8Array(12)), /tensor "b" data_offsets \[4, 12\] overlap tensor "a"/);
    const gap = {
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    };
    expectError(file(gap, new Uint8Array(12)), /gap at offset 4..8 before tensor "b"/);
    expectError(file({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight), /gap at offset 0..4/);
    expectError(file({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, eight), /4 unused byte\(s\) after offset 4/);
  });

  it('metadata that is not a string map', () => {
    expectError(file({ __metadata__: { epoch: 3 } }), /"__metadata__.epoch" is 3/);
    expectError(file({ __metadata__: [] }), /must be an object of strings/);
  });
});

describe('writeSafetensors', () => {
  it('round-trips float32, int32 and bool tensors with metadata', async () => {
    // Sorted order a.ids, empty, layer.weight, mask (2 bytes), scalar: "scalar" lands 2 bytes off a
    // 4-byte boundary, so both the typed-array fast path and the DataView path are exercised.
    const input = {
      'layer.weight': tf.tensor2d([
        [1.5, -2],
        [3e-7, 1e30],
      ]),
      'a.ids': tf.tensor1d([-5, 0, 2147483647], 'int32'),
      mask: tf.tensor1d([true, false], 'bool'),
      scalar: tf.scalar(-0.25),
      empty: tf.zeros([0, 3]),
    };
    const bytes = writeSafetensors(input, { step: '12' });
    const f = readSafetensors(bytes);
    expect(f.metadata).toEqual({ step: '12' });
    const out = safetensorsToTensors(f);
    for (const [name, t] of Object.entries(input)) {
      expect(out[name].dtype).toBe(t.dtype);
      expect(out[name].shape).toEqual(t.shape);
      expect(await values(out[name])).toEqual(await values(t));
    }
    tf.dispose(out);
    tf.dispose(input);
  });

  it('sorts by name, pads the header with spaces to 8 bytes and lays data out contiguously', () => {
    const input = { zeta: tf.ones([3]), alpha: tf.ones([1], 'int32'), mid: tf.ones([2, 2]) };
    const bytes = writeSafetensors(input);
    tf.dispose(input);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text).toMatch(/^\{.*\} *$/);
    const header = JSON.parse(text);
    expect(Object.keys(header)).toEqual(['alpha', 'mid', 'zeta']);
    expect(header).not.toHaveProperty('__metadata__');
    expect(header.alpha).toEqual({ dtype: 'I32', shape: [1], data_offsets: [0, 4] });
    expect(header.mid).toEqual({ dtype: 'F32', shape: [2, 2], data_offsets: [4, 20] });
    expect(header.zeta).toEqual({ dtype: 'F32', shape: [3], data_offsets: [20, 32] });
    expect(bytes.length).toBe(8 + n + 32);
    // Little-endian 1.0f at the start of "mid".
    expect(Array.from(bytes.subarray(8 + n + 4, 8 + n + 8))).toEqual([0, 0, 0x80, 0x3f]);
  });

  it('rejects what it cannot write, with the tensor named', () => {
    const s = tf.tensor(['x']);
    expect(() => writeSafetensors({ text: s })).toThrow(/"text" has dtype string.*Cast it/);
    s.dispose();
    const t = tf.ones([1]);
    expect(() => writeSafetensors({ __metadata__: t })).toThrow(/reserved/);
    expect(() => writeSafetensors({ a: t }, { n: 3 as unknown as string })).toThrow(/metadata "n" is number/);
    t.dispose();
    expect(() => writeSafetensors({ a: t })).toThrow(/"a" is disposed/);
    expect(() => writeSafetensors({ a: [1, 2] as unknown as tf.Tensor })).toThrow(/"a" is not a tf.Tensor/);
  });
});

describe('safetensors files', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ett-safetensors-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('saves atomically (no temp file left) and loads back, replacing an existing file', async () => {
    const path = join(dir, 'model.safetensors');
    await writeFile(path, 'old contents');
    const input = { w: tf.tensor2d([[1, 2, 3]]), i: tf.tensor1d([4], 'int32') };
    await saveSafetensorsFile(path, input, { kind: 'test' });
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    expect(new Uint8Array(await readFile(path))).toEqual(writeSafetensors(input, { kind: 'test' }));
    const f = await loadSafetensorsFile(path);
    expect(f.metadata).toEqual({ kind: 'test' });
    const out = safetensorsToTensors(f);
    expect(await values(out.w)).toEqual([1, 2, 3]);
    expect(await values(out.i)).toEqual([4]);
    tf.dispose(out);
    tf.dispose(input);
  });

  it('names the path when a file is malformed, and leaves the target untouched when a save fails', async () => {
    const bad = join(dir, 'bad.safetensors');
    await writeFile(bad, new Uint8Array(5));
    await expect(loadSafetensorsFile(bad)).rejects.toThrow(/bad\.safetensors: safetensors: file is 5 bytes/);
    const s = tf.tensor(['x']);
    await expect(saveSafetensorsFile(bad, { s })).rejects.toThrow(SafetensorsError);
    s.dispose();
    expect((await readFile(bad)).length).toBe(5);
    await expect(saveSafetensorsFile(join(dir, 'missing-dir', 'x.safetensors'), {})).rejects.toThrow(/ENOENT/);
    expect((await readdir(dir)).sort()).toEqual(['bad.safetensors', 'model.safetensors']);
  });
});
