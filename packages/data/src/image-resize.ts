import type { RgbImage } from './image-decode';

/** Per output pixel along one axis: source indices and weights summing to 1. */
type AxisTaps = { index: Int32Array; weight: Float32Array; offset: Int32Array };

/**
 * Taps mapping the source window `[start, start + span)` of an axis of `srcLen` pixels onto `outLen`
 * pixels. Shrinking uses exact area averaging (each output pixel is the mean of the source area it
 * covers, fractions included), so thin strokes such as glyphs are averaged, never dropped as
 * point sampling would; enlarging uses bilinear interpolation between pixel centres.
 */
function axisTaps(srcLen: number, start: number, span: number, outLen: number): AxisTaps {
  const idx: number[] = [];
  const w: number[] = [];
  const offset = new Int32Array(outLen + 1);
  const scale = span / outLen;
  for (let o = 0; o < outLen; o++) {
    offset[o] = idx.length;
    if (scale >= 1) {
      const a = start + o * scale;
      const b = a + scale;
      for (let s = Math.floor(a); s < Math.ceil(b); s++) {
        const cover = Math.min(b, s + 1) - Math.max(a, s);
        if (cover > 1e-9) {
          idx.push(Math.min(srcLen - 1, Math.max(0, s)));
          w.push(cover / scale);
        }
      }
    } else {
      const c = start + (o + 0.5) * scale - 0.5;
      const lo = Math.floor(c);
      const f = c - lo;
      idx.push(Math.min(srcLen - 1, Math.max(0, lo)), Math.min(srcLen - 1, Math.max(0, lo + 1)));
      w.push(1 - f, f);
    }
  }
  offset[outLen] = idx.length;
  return { index: Int32Array.from(idx), weight: Float32Array.from(w), offset };
}

/**
 * Scales the shorter side to `size`, crops the centre square and normalises to [-1, 1]: the input
 * a tokenizer expects. Returns `[size * size * 3]` float32, row-major NHWC.
 */
export function resizeCenterCrop(image: RgbImage, size: number): Float32Array {
  const { data, width: W, height: H } = image;
  if (!Number.isInteger(size) || size < 1) throw new Error(`resizeCenterCrop: size must be a positive integer, got ${size}`);
  if (data.length !== W * H * 3) throw new Error(`resizeCenterCrop: expected ${W}x${H}x3 = ${W * H * 3} bytes, got ${data.length}`);
  const side = Math.min(W, H);
  const xs = axisTaps(W, (W - side) / 2, side, size);
  const ys = axisTaps(H, (H - side) / 2, side, size);
  // Horizontal pass over every source row, then vertical pass.
  const rows = new Float32Array(H * size * 3);
  for (let y = 0; y < H; y++) {
    for (let o = 0; o < size; o++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let t = xs.offset[o]!; t < xs.offset[o + 1]!; t++) {
        const s = (y * W + xs.index[t]!) * 3;
        const wt = xs.weight[t]!;
        r += data[s]! * wt;
        g += data[s + 1]! * wt;
        b += data[s + 2]! * wt;
      }
      const d = (y * size + o) * 3;
      rows[d] = r;
      rows[d + 1] = g;
      rows[d + 2] = b;
    }
  }
  const out = new Float32Array(size * size * 3);
  for (let o = 0; o < size; o++) {
    for (let x = 0; x < size; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let t = ys.offset[o]!; t < ys.offset[o + 1]!; t++) {
        const s = (ys.index[t]! * size + x) * 3;
        const wt = ys.weight[t]!;
        r += rows[s]! * wt;
        g += rows[s + 1]! * wt;
        b += rows[s + 2]! * wt;
      }
      const d = (o * size + x) * 3;
      out[d] = r / 127.5 - 1;
      out[d + 1] = g / 127.5 - 1;
      out[d + 2] = b / 127.5 - 1;
    }
  }
  return out;
}
