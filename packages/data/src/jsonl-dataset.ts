import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { IndexedDataset, imageCaptionSample, type LoadedSample, type SampleOrigin, SampleError } from './dataset';

interface JsonlEntry {
  line: number;
  image?: string;
  caption?: string;
  /** Why the line cannot be used; reported when the record is loaded, so the policy applies. */
  error?: string;
}

/**
 * Image–caption pairs listed in a JSONL file, one `{"image": "path", "caption": "..."}` per line.
 * Image paths resolve against the JSONL file's directory. Blank lines are ignored; a line that is
 * not such an object stays in the epoch as a bad record, reported with its file and line.
 */
export class JsonlDataset extends IndexedDataset {
  readonly description: string;

  private constructor(
    readonly file: string,
    private readonly entries: JsonlEntry[],
  ) {
    super();
    this.description = `jsonl ${file}`;
  }

  /** Reads and parses the index (images are read later, per batch). */
  static async open(file: string): Promise<JsonlDataset> {
    const path = resolve(file);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw new Error(`cannot read JSONL dataset ${path}: ${(e as Error).message}`);
    }
    const base = dirname(path);
    const entries: JsonlEntry[] = [];
    text.split('\n').forEach((raw, i) => {
      const line = i + 1;
      const src = raw.trim();
      if (src === '') return;
      let obj: unknown;
      try {
        obj = JSON.parse(src);
      } catch (e) {
        entries.push({ line, error: `unparsable JSON (${(e as Error).message})` });
        return;
      }
      const rec = obj as { image?: unknown; caption?: unknown };
      if (typeof obj !== 'object' || obj === null || typeof rec.image !== 'string' || rec.image === '' || typeof rec.caption !== 'string') {
        const got = typeof obj === 'object' && obj !== null ? `keys [${Object.keys(obj).join(', ')}]` : JSON.stringify(obj);
        entries.push({ line, error: `expected {"image": "<path>", "caption": "<text>"}, got ${got}` });
        return;
      }
      entries.push({ line, image: resolve(base, rec.image), caption: rec.caption });
    });
    return new JsonlDataset(path, entries);
  }

  get length(): number {
    return this.entries.length;
  }

  origin(index: number): SampleOrigin {
    return { file: this.file, line: this.entries[index]!.line };
  }

  async load(index: number, imageSize: number): Promise<LoadedSample> {
    const e = this.entries[index]!;
    const origin = this.origin(index);
    if (e.error !== undefined) throw new SampleError(origin, e.error);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(e.image!);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new SampleError(
        origin,
        code === 'ENOENT' ? `missing image file ${e.image}` : `cannot read image ${e.image}: ${(err as Error).message}`,
      );
    }
    return imageCaptionSample(bytes, e.image!, e.caption!, origin, imageSize);
  }
}
