import * as tf from '@tensorflow/tfjs-core';
import { PNG } from 'pngjs';

function checkImage(image: Float32Array, height: number, width: number, what: string): void {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new Error(`${what}: height and width must be positive integers, got ${height}x${width}`);
  }
  if (image.length !== height * width * 3) {
    throw new Error(`${what}: expected ${height}x${width}x3 = ${height * width * 3} values, got ${image.length}`);
  }
}

/** Encodes a `[H * W * 3]` image in [-1, 1] (clamped) as PNG bytes, for reports and examples. */
export function encodePng(image: Float32Array, height: number, width: number): Uint8Array {
  checkImage(image, height, width, 'encodePng');
  const png = new PNG({ width, height });
  for (let i = 0, j = 0; i < image.length; i += 3, j += 4) {
    for (let c = 0; c < 3; c++) {
      const v = Math.round((image[i + c]! + 1) * 127.5);
      png.data[j + c] = v < 0 ? 0 : v > 255 ? 255 : Number.isNaN(v) ? 0 : v;
    }
    png.data[j + 3] = 255;
  }
  return new Uint8Array(PNG.sync.write(png));
}

/**
 * Tiles equal-sized images row by row, `cols` per row, with `pad` pixels of `padValue` (in [-1, 1],
 * default white) between and around them. Returns the grid and its size, ready for `encodePng`.
 */
export function imageGrid(
  images: readonly Float32Array[],
  cols: number,
  height: number,
  width: number,
  pad = 1,
  padValue = 1,
): { image: Float32Array; height: number; width: number } {
  if (images.length === 0) throw new Error('imageGrid: no images');
  if (!Number.isInteger(cols) || cols < 1) throw new Error(`imageGrid: cols must be a positive integer, got ${cols}`);
  for (const [i, im] of images.entries()) checkImage(im, height, width, `imageGrid image ${i}`);
  const rows = Math.ceil(images.length / cols);
  const c = Math.min(cols, images.length);
  const GW = c * width + (c + 1) * pad;
  const GH = rows * height + (rows + 1) * pad;
  const grid = new Float32Array(GH * GW * 3).fill(padValue);
  images.forEach((im, i) => {
    const x0 = pad + (i % cols) * (width + pad);
    const y0 = pad + Math.floor(i / cols) * (height + pad);
    for (let y = 0; y < height; y++) grid.set(im.subarray(y * width * 3, (y + 1) * width * 3), ((y0 + y) * GW + x0) * 3);
  });
  return { image: grid, height: GH, width: GW };
}

/** Stacks `[H * W * 3]` images (or one `[B * H * W * 3]` buffer) into a `[B, H, W, 3]` tensor. */
export function toBatchTensor(images: Float32Array | readonly Float32Array[], height: number, width: number): tf.Tensor4D {
  const per = height * width * 3;
  let flat: Float32Array;
  if (images instanceof Float32Array) {
    flat = images;
  } else {
    for (const [i, im] of images.entries()) checkImage(im, height, width, `toBatchTensor image ${i}`);
    flat = new Float32Array(images.length * per);
    for (const [i, im] of images.entries()) flat.set(im, i * per);
  }
  if (flat.length === 0 || flat.length % per !== 0) {
    throw new Error(`toBatchTensor: ${flat.length} values is not a positive multiple of ${height}x${width}x3 = ${per}`);
  }
  return tf.tensor4d(flat, [flat.length / per, height, width, 3], 'float32');
}
