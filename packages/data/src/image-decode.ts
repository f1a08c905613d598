import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

/** An 8-bit RGB image, `[H * W * 3]` row-major. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** The bytes are not a PNG or JPEG this package can decode. */
export class ImageDecodeError extends Error {
  constructor(
    readonly source: string,
    readonly reason: string,
  ) {
    super(`cannot decode image ${source}: ${reason}`);
    this.name = 'ImageDecodeError';
  }
}

// jpeg-js refuses images over these limits instead of exhausting memory on a hostile file.
const MAX_MEGAPIXELS = 100;
const MAX_DECODE_MB = 1024;

/**
 * Decodes PNG or JPEG bytes (detected by their magic numbers, not the file name) with the pure-JS
 * pngjs and jpeg-js. Alpha is dropped like PIL's `convert('RGB')`, which is what caption datasets
 * are usually preprocessed with. `source` names the file in errors.
 */
export function decodeImage(bytes: Uint8Array, source = 'image'): RgbImage {
  const isPng = bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  const isJpeg = bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!isPng && !isJpeg) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new ImageDecodeError(source, `not a PNG or JPEG (first bytes: ${head || 'none'}); convert it to PNG or JPEG`);
  }
  let rgba: Uint8Array;
  let width: number;
  let height: number;
  try {
    if (isPng) {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      ({ width, height } = png);
      rgba = png.data;
    } else {
      const img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        maxResolutionInMP: MAX_MEGAPIXELS,
        maxMemoryUsageInMB: MAX_DECODE_MB,
      });
      ({ width, height } = img);
      rgba = img.data;
    }
  } catch (e) {
    throw new ImageDecodeError(source, `corrupt or truncated ${isPng ? 'PNG' : 'JPEG'} (${(e as Error).message})`);
  }
  if (!(width > 0 && height > 0) || rgba.length < width * height * 4) {
    throw new ImageDecodeError(source, `decoder returned ${width}x${height} with ${rgba.length} bytes`);
  }
  const data = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; j < data.length; i += 4, j += 3) {
    data[j] = rgba[i]!;
    data[j + 1] = rgba[i + 1]!;
    data[j + 2] = rgba[i + 2]!;
  }
  return { data, width, height };
}
