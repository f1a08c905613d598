import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { IndexedDataset, imageCaptionSample, type LoadedSample, type SampleOrigin, SampleError } from './dataset';

const IMAGE_EXT = /\.(png|jpe?g)$/i;

/**
 * A folder of images with sidecar captions: `cat.jpg` + `cat.txt` (searched recursively, sorted by
 * path). An image without its `.txt` stays in the epoch as a bad record and is reported.
 */
export class FolderDataset extends IndexedDataset {
  readonly description: string;

  private constructor(
    readonly dir: string,
    private readonly images: string[],
  ) {
    super();
    this.description = `folder ${dir}`;
  }

  static async open(dir: string): Promise<FolderDataset> {
    const root = resolve(dir);
    let names: string[];
    try {
      names = (await readdir(root, { recursive: true })) as string[];
    } catch (e) {
      throw new Error(`cannot read image folder ${root}: ${(e as Error).message}`);
    }
    const images = names
      .filter((n) => IMAGE_EXT.test(n))
      .map((n) => join(root, n))
      .sort();
    return new FolderDataset(root, images);
  }

  get length(): number {
    return this.images.length;
  }

  origin(index: number): SampleOrigin {
    return { file: this.images[index]! };
  }

  async load(index: number, imageSize: number): Promise<LoadedSample> {
    const image = this.images[index]!;
    const origin = this.origin(index);
    const captionFile = image.replace(IMAGE_EXT, '.txt');
    let caption: string;
    try {
      caption = (await readFile(captionFile, 'utf8')).trim();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new SampleError(
        origin,
        code === 'ENOENT' ? `missing caption file ${captionFile}` : `cannot read caption ${captionFile}: ${(e as Error).message}`,
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = await readFile(image);
    } catch (e) {
      throw new SampleError(origin, `cannot read image: ${(e as Error).message}`);
    }
    return imageCaptionSample(bytes, image, caption, origin, imageSize);
  }
}
