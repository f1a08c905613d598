import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gnuTar, tempDir } from '../test/helpers';
import { readTar, readTarFile, TarError } from './tar';

const t = tempDir();
afterAll(t.cleanup);

const longDir = `${'d'.repeat(60)}/${'e'.repeat(60)}`;
const files: Record<string, Uint8Array> = {
  'a.txt': new TextEncoder().encode('hello'),
  'b.bin': Uint8Array.from({ length: 1500 }, (_, i) => (i * 7) % 256),
  'empty.txt': new Uint8Array(0),
  [`${longDir}/${'f'.repeat(110)}.txt`]: new TextEncoder().encode('long name'),
};
for (const [name, data] of Object.entries(files)) {
  mkdirSync(join(t.dir, 'src', name, '..'), { recursive: true });
  writeFileSync(join(t.dir, 'src', name), data);
}

async function collect(it: AsyncIterable<{ name: string; data: Uint8Array }>) {
  const out: [string, number[]][] = [];
  for await (const e of it) out.push([e.name, [...e.data]]);
  return out;
}

describe('readTar', () => {
  for (const format of ['pax', 'gnu'] as const) {
    it(`reads a ${format} archive made by GNU tar (long names via ${format === 'pax' ? "pax 'x'" : "GNU 'L'"} headers), skipping directories`, async () => {
      const archive = join(t.dir, `${format}.tar`);
      const names = Object.keys(files);
      gnuTar(archive, join(t.dir, 'src'), [longDir.split('/')[0]!, ...names], format);
      const got = await collect(readTarFile(archive));
      expect(got).toEqual(names.map((n) => [n, [...files[n]!]]));
    });
  }

  it('reads ustar prefix/name paths and tolerates tiny chunks', async () => {
    const archive = join(t.dir, 'ustar.tar');
    gnuTar(archive, join(t.dir, 'src'), ['a.txt', 'b.bin'], 'ustar');
    const bytes = readFileSync(archive);
    async function* chunks() {
      for (let i = 0; i < bytes.length; i += 7) yield bytes.subarray(i, i + 7);
    }
    expect(await collect(readTar(chunks(), archive))).toEqual([
      ['a.txt', [...files['a.txt']!]],
      ['b.bin', [...files['b.bin']!]],
    ]);
  });

  it('names the truncated member', async () => {
    const archive = join(t.dir, 'ok.tar');
    gnuTar(archive, join(t.dir, 'src'), ['a.txt', 'b.bin'], 'ustar');
    const cut = join(t.dir, 'cut.tar');
    writeFileSync(cut, readFileSync(archive).subarray(0, 1024 + 512 + 700)); // a.txt, then b.bin header + 700 of 1500 bytes
    const seen: string[] = [];
    const run = async () => {
      for await (const e of readTarFile(cut)) seen.push(e.name);
    };
    await expect(run()).rejects.toThrow(TarError);
    await expect(run()).rejects.toThrow(/member b\.bin: truncated: header says 1500 bytes, only 700 present/);
    expect(seen[0]).toBe('a.txt');
  });

  it('rejects a file that is not a tar archive', async () => {
    const bogus = join(t.dir, 'bogus.tar');
    writeFileSync(bogus, new Uint8Array(600).fill(65));
    await expect(collect(readTarFile(bogus))).rejects.toThrow(/bad header checksum at byte 0/);
    writeFileSync(bogus, new Uint8Array(100).fill(65));
    await expect(collect(readTarFile(bogus))).rejects.toThrow(/truncated header at byte 0/);
  });
});
