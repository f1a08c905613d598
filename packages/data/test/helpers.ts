import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TextTokenizer } from '@ettjs/core';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

/** Test-only byte tokenizer: id = UTF-8 byte, then pad 256, bos 257, eos 258. */
export class TestByteTokenizer implements TextTokenizer {
  readonly vocabSize = 259;
  readonly specialTokens = { pad: 256, bos: 257, eos: 258 };
  encode(text: string): number[] {
    return [...new TextEncoder().encode(text)];
  }
  decode(ids: readonly number[]): string {
    return new TextDecoder().decode(Uint8Array.from(ids.filter((i) => i < 256)));
  }
}

/** RGB bytes from a per-pixel function. */
export function rgb(width: number, height: number, f: (x: number, y: number) => [number, number, number]): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out.set(f(x, y), (y * width + x) * 3);
  return out;
}

export function pngBytes(width: number, height: number, data: Uint8Array): Uint8Array {
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    png.data[i * 4] = data[i * 3]!;
    png.data[i * 4 + 1] = data[i * 3 + 1]!;
    png.data[i * 4 + 2] = data[i * 3 + 2]!;
    png.data[i * 4 + 3] = 255;
  }
  return new Uint8Array(PNG.sync.write(png));
}

export function jpegBytes(width: number, height: number, data: Uint8Array, quality = 95): Uint8Array {
  const rgba = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    rgba[i * 4] = data[i * 3]!;
    rgba[i * 4 + 1] = data[i * 3 + 1]!;
    rgba[i * 4 + 2] = data[i * 3 + 2]!;
    rgba[i * 4 + 3] = 255;
  }
  return new Uint8Array(jpeg.encode({ data: rgba, width, height }, quality).data);
}

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ettjs-data-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Builds a tar with Debian's GNU tar: members added in the given order, relative to `cwd`. */
export function gnuTar(archive: string, cwd: string, members: string[], format: 'ustar' | 'pax' | 'gnu' = 'ustar'): void {
  execFileSync('tar', [`--format=${format}`, '-cf', archive, '-C', cwd, '--no-recursion', ...members]);
}
