import { createReadStream } from 'node:fs';

/**
 * A streaming reader for tar archives (POSIX ustar, with pax `x` headers and GNU `L` long names),
 * enough for WebDataset shards. Entries come in archive order and only regular files are
 * returned; directories, links, pax globals and other types are skipped.
 */

/** A regular file in a tar archive. */
export interface TarEntry {
  /** Path inside the archive (pax `path` or GNU long name when present). */
  name: string;
  data: Uint8Array;
}

/** A malformed or truncated archive. */
export class TarError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
    readonly member?: string,
  ) {
    super(`tar ${file}${member ? ` member ${member}` : ''}: ${reason}`);
    this.name = 'TarError';
  }
}

const BLOCK = 512;
const utf8 = new TextDecoder();

/** Pulls exact byte counts out of a chunked stream. */
class ByteReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private done = false;
  offset = 0;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Up to `n` bytes; fewer only at end of stream. */
  async read(n: number): Promise<Uint8Array> {
    while (this.buffered < n && !this.done) {
      const r = await this.source.next();
      if (r.done) this.done = true;
      else if (r.value.length > 0) {
        this.chunks.push(r.value);
        this.buffered += r.value.length;
      }
    }
    const take = Math.min(n, this.buffered);
    const out = new Uint8Array(take);
    let filled = 0;
    while (filled < take) {
      const head = this.chunks[0]!;
      const part = Math.min(head.length, take - filled);
      out.set(head.subarray(0, part), filled);
      filled += part;
      if (part === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(part);
    }
    this.buffered -= take;
    this.offset += take;
    return out;
  }
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return utf8.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** Octal field, or GNU base-256 when the high bit of the first byte is set (sizes over 8 GiB). */
function numeric(bytes: Uint8Array): number {
  if (bytes[0]! & 0x80) {
    let v = bytes[0]! & 0x7f;
    for (let i = 1; i < bytes.length; i++) v = v * 256 + bytes[i]!;
    return v;
  }
  const s = cString(bytes).trim();
  return s === '' ? 0 : Number.parseInt(s, 8);
}

/** pax records: `"<len> <key>=<value>\n"` repeated. */
function paxRecords(data: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    let sp = i;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const len = Number.parseInt(utf8.decode(data.subarray(i, sp)), 10);
    if (!(len > 0) || i + len > data.length) break;
    const rec = utf8.decode(data.subarray(sp + 1, i + len - 1));
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/** Reads regular-file entries from tar bytes arriving in chunks; `file` names the archive in errors. */
export async function* readTar(chunks: AsyncIterable<Uint8Array>, file: string): AsyncGenerator<TarEntry> {
  const iterator = chunks[Symbol.asyncIterator]();
  const reader = new ByteReader(iterator);
  let nextName: string | undefined;
  let nextSize: number | undefined;
  try {
    for (;;) {
      const at = reader.offset;
      const header = await reader.read(BLOCK);
      if (header.length === 0) return; // archive without the end-of-archive blocks: tolerated
      if (header.length < BLOCK) throw new TarError(file, `truncated header at byte ${at} (${header.length} of 512 bytes)`);
      if (header.every((b) => b === 0)) return; // end-of-archive marker
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
      const stored = numeric(header.subarray(148, 156));
      if (sum !== stored)
        throw new TarError(file, `bad header checksum at byte ${at} (stored ${stored}, computed ${sum}): not a tar archive or corrupt`);
      const type = String.fromCharCode(header[156]!);
      let name = cString(header.subarray(0, 100));
      if (utf8.decode(header.subarray(257, 262)) === 'ustar') {
        const prefix = cString(header.subarray(345, 500));
        if (prefix) name = `${prefix}/${name}`;
      }
      const size = type === 'x' || type === 'g' || type === 'L' || nextSize === undefined ? numeric(header.subarray(124, 136)) : nextSize;
      const memberName = type === 'x' || type === 'g' || type === 'L' ? name : (nextName ?? name);
      const data = await reader.read(size);
      if (data.length < size) throw new TarError(file, `truncated: header says ${size} bytes, only ${data.length} present`, memberName);
      const padding = (BLOCK - (size % BLOCK)) % BLOCK;
      if (padding) await reader.read(padding);
      if (type === 'x') {
        const rec = paxRecords(data);
        if (rec.path !== undefined) nextName = rec.path;
        if (rec.size !== undefined) nextSize = Number.parseInt(rec.size, 10);
        continue;
      }
      if (type === 'L') {
        nextName = cString(data);
        continue;
      }
      if (type === 'g') continue;
      nextName = undefined;
      nextSize = undefined;
      if (type === '0' || type === '\0' || type === '7') yield { name: memberName, data };
    }
  } finally {
    await iterator.return?.();
  }
}

/** Streams the entries of a tar file from disk. */
export function readTarFile(path: string): AsyncGenerator<TarEntry> {
  return readTar(createReadStream(path), path);
}
