import { BITMAP_FONTS, type BitmapFont, FONT_CHARSET, type FontName, glyphRows } from './bitmap-font';
import { IndexedDataset, type LoadedSample, type SampleOrigin } from './dataset';
import type { Rng } from '@ettjs/core';
import { between, hashKey, keyedRng, pick } from './keyed-random';

/**
 * The embedded synthetic text-in-image dataset. Each image has one or two coloured shapes at a
 * coarse position and a short string drawn with a built-in bitmap font in a text band at the
 * bottom; its caption comes from a fixed grammar (`a red circle on the left. text: K7.`) and every
 * field is exposed on its own, so an evaluator can score shape, colour, position and text apart.
 * The text is what makes ETT's claim testable at toy scale: glyphs span one or two latent cells of
 * a ×4/×8 tokenizer, so a frozen, capacity-limited tokenizer blurs them (the paper's TextVQA gain).
 */

export type ShapeName = 'circle' | 'square' | 'triangle' | 'cross';
export type ColourName = 'red' | 'green' | 'blue' | 'yellow' | 'purple' | 'cyan';
export type PositionName = 'left' | 'right' | 'top' | 'bottom' | 'center';
export type SplitName = 'train' | 'validation' | 'test';

export const SHAPES: readonly ShapeName[] = ['circle', 'square', 'triangle', 'cross'];
export const POSITIONS: readonly PositionName[] = ['left', 'right', 'top', 'bottom', 'center'];
export const SPLITS: readonly SplitName[] = ['train', 'validation', 'test'];

/** RGB (0–255) of each shape colour: saturated and far apart, none close to the white text. */
export const SHAPE_COLOURS: Readonly<Record<ColourName, readonly [number, number, number]>> = {
  red: [230, 40, 40],
  green: [40, 200, 60],
  blue: [50, 90, 240],
  yellow: [240, 220, 40],
  purple: [200, 60, 220],
  cyan: [40, 210, 220],
};

const POSITION_PHRASES: Readonly<Record<PositionName, string>> = {
  left: 'on the left',
  right: 'on the right',
  top: 'at the top',
  bottom: 'at the bottom',
  center: 'in the center',
};

/** One shape of a sample. */
export interface ShapeFields {
  shape: ShapeName;
  colour: ColourName;
  position: PositionName;
}

/** Ground truth of a sample: the first shape's fields, the text, and all shapes. */
export interface SyntheticFields extends ShapeFields {
  text: string;
  shapes: ShapeFields[];
}

/** Fields recovered from a (possibly generated, possibly garbled) caption; `null` where absent. */
export interface ParsedCaption {
  shape: ShapeName | null;
  colour: ColourName | null;
  position: PositionName | null;
  text: string | null;
  shapes: { shape: ShapeName | null; colour: ColourName | null; position: PositionName | null }[];
}

export interface SyntheticConfig {
  /** Image side in pixels. Defaults to 32 (the 32–64 range; 16–256 accepted). */
  imageSize: number;
  /** Seed of the sample streams; the split partition does not depend on it. Defaults to 0. */
  seed: number;
  /** Shapes to draw from. Defaults to all four. */
  shapes: readonly ShapeName[];
  /** Colours to draw from. Defaults to all six of `SHAPE_COLOURS`. */
  colours: readonly ColourName[];
  /** Coarse positions to draw from. Defaults to all five. */
  positions: readonly PositionName[];
  /** Min and max shapes per image (1 or 2); two shapes never overlap. Defaults to [1, 1]. */
  shapesPerImage: readonly [number, number];
  /** Min and max characters of the rendered string. Defaults to [2, 2] (MEASUREMENTS.md: 2–3 chars). */
  textLength: readonly [number, number];
  /** Characters the string is drawn from; each must be in the font. Defaults to A–Z0–9. */
  charset: string;
  /** Built-in bitmap font. Defaults to '3x5'. */
  font: FontName;
  /** Pixels per font pixel. Defaults to 2 (MEASUREMENTS.md: 1 px per font pixel was unreadable to every arm at 32×32). */
  glyphScale: number;
  /** 'fixed': text centred in the bottom band; 'jitter': random x offset in the band. Defaults to 'fixed' (MEASUREMENTS.md). */
  textPlacement: 'fixed' | 'jitter';
  /** Shape side in pixels; 0 picks `min(R/2 - 1, S/4)` for shape-area height R and image side S. Defaults to 0. */
  shapeSize: number;
  /** Max random offset of a shape from its position's anchor, in pixels. Defaults to 1. */
  positionJitter: number;
  /** Background RGB (0–255). Defaults to black. */
  background: readonly [number, number, number];
  /** Text RGB (0–255). Defaults to white. */
  textColour: readonly [number, number, number];
  /** Fraction of the sample space that belongs to each split. Defaults to 0.8 / 0.1 / 0.1. */
  splitFractions: Readonly<Record<SplitName, number>>;
  /** Samples per split when used as a `DataLoader` dataset. Defaults to 20000 / 1000 / 1000. */
  splitSizes: Readonly<Record<SplitName, number>>;
}

export const DEFAULT_SYNTHETIC_CONFIG: SyntheticConfig = {
  imageSize: 32,
  seed: 0,
  shapes: SHAPES,
  colours: ['red', 'green', 'blue', 'yellow', 'purple', 'cyan'],
  positions: POSITIONS,
  shapesPerImage: [1, 1],
  textLength: [2, 2],
  charset: FONT_CHARSET,
  font: '3x5',
  glyphScale: 2,
  textPlacement: 'fixed',
  shapeSize: 0,
  positionJitter: 1,
  background: [0, 0, 0],
  textColour: [255, 255, 255],
  splitFractions: { train: 0.8, validation: 0.1, test: 0.1 },
  splitSizes: { train: 20000, validation: 1000, test: 1000 },
};

/** A rendered sample. */
export interface SyntheticSample {
  /** `[H * W * 3]` float32 in [-1, 1], row-major NHWC. */
  image: Float32Array;
  height: number;
  width: number;
  caption: string;
  fields: SyntheticFields;
  split: SplitName;
  index: number;
  /** Everything that determines the pixels; equal keys give equal images. */
  key: string;
}

/** Thrown for a configuration that cannot be rendered (text wider than the image, unknown names, ...). */
export class SyntheticConfigError extends Error {
  constructor(message: string) {
    super(`synthetic dataset config: ${message}`);
    this.name = 'SyntheticConfigError';
  }
}

interface PlacedShape extends ShapeFields {
  dx: number;
  dy: number;
}

interface SampleSpec {
  shapes: PlacedShape[];
  text: string;
  textX: number;
}

/** Generates samples as a pure function of `(config, split, index)`. */
export class SyntheticTextImages {
  readonly config: SyntheticConfig;
  private readonly font: BitmapFont;
  private readonly bandTop: number;
  private readonly size: number;
  private readonly anchors: Record<PositionName, [number, number]>;
  /** Positions that can host a second shape without overlap, per first position. */
  private readonly partners: Record<PositionName, PositionName[]>;

  constructor(config: Partial<SyntheticConfig> = {}) {
    const c: SyntheticConfig = { ...DEFAULT_SYNTHETIC_CONFIG, ...config };
    this.config = c;
    const fail = (m: string): never => {
      throw new SyntheticConfigError(m);
    };
    const S = c.imageSize;
    if (!Number.isInteger(S) || S < 16 || S > 256) fail(`imageSize must be an integer in [16, 256], got ${S}`);
    if (!Number.isInteger(c.glyphScale) || c.glyphScale < 1) fail(`glyphScale must be a positive integer, got ${c.glyphScale}`);
    const font = BITMAP_FONTS[c.font];
    if (!font) fail(`font must be one of ${Object.keys(BITMAP_FONTS).join(', ')}, got ${c.font}`);
    this.font = font;
    for (const ch of c.charset)
      if (!font.glyphs[ch]) fail(`charset character ${JSON.stringify(ch)} is not in font ${c.font} (it covers ${FONT_CHARSET})`);
    if (c.charset.length === 0) fail('charset is empty');
    const [tMin, tMax] = c.textLength;
    if (!Number.isInteger(tMin) || !Number.isInteger(tMax) || tMin < 1 || tMax < tMin)
      fail(`textLength must be [min, max] with 1 <= min <= max, got [${tMin}, ${tMax}]`);
    const [sMin, sMax] = c.shapesPerImage;
    if (!Number.isInteger(sMin) || !Number.isInteger(sMax) || sMin < 1 || sMax > 2 || sMax < sMin)
      fail(`shapesPerImage must be [min, max] within [1, 2], got [${sMin}, ${sMax}]`);
    for (const s of c.shapes) if (!SHAPES.includes(s)) fail(`unknown shape ${JSON.stringify(s)}; known: ${SHAPES.join(', ')}`);
    for (const s of c.colours)
      if (!SHAPE_COLOURS[s]) fail(`unknown colour ${JSON.stringify(s)}; known: ${Object.keys(SHAPE_COLOURS).join(', ')}`);
    for (const s of c.positions) if (!POSITIONS.includes(s)) fail(`unknown position ${JSON.stringify(s)}; known: ${POSITIONS.join(', ')}`);
    if (c.shapes.length === 0 || c.colours.length === 0 || c.positions.length === 0)
      fail('shapes, colours and positions must each list at least one name');
    const total = SPLITS.reduce((a, s) => a + (c.splitFractions[s] ?? 0), 0);
    if (SPLITS.some((s) => !(c.splitFractions[s]! >= 0)) || Math.abs(total - 1) > 1e-9)
      fail(`splitFractions must be non-negative and sum to 1, got ${JSON.stringify(c.splitFractions)}`);

    const k = c.glyphScale;
    const widest = tMax * font.width * k + (tMax - 1) * k;
    if (widest > S - 2)
      fail(
        `${tMax} characters of font ${c.font} at glyphScale ${k} need ${widest} px but the image is ${S} px wide; lower textLength or glyphScale, or raise imageSize`,
      );
    // The text band sits below the shape area so text and shapes never overlap.
    this.bandTop = S - (font.height * k + 2 * k);
    const R = this.bandTop;
    const size = c.shapeSize > 0 ? c.shapeSize : Math.min(Math.floor(R / 2) - 1, Math.floor(S / 4));
    if (!Number.isInteger(size) || size < 3 || size + 2 * c.positionJitter + 2 > R) {
      fail(
        `shape size ${size} (+ jitter ${c.positionJitter}) does not fit the ${R}-px shape area above the text band; lower glyphScale or raise imageSize`,
      );
    }
    this.size = size;
    const m = Math.ceil(size / 2) + c.positionJitter + 1;
    this.anchors = { left: [m, R / 2], right: [S - m, R / 2], top: [S / 2, m], bottom: [S / 2, R - m], center: [S / 2, R / 2] };
    const j = c.positionJitter;
    const box = (p: PositionName) => {
      const [x, y] = this.anchors[p];
      return [x - size / 2 - j, x + size / 2 + j, y - size / 2 - j, y + size / 2 + j] as const;
    };
    const overlaps = (a: PositionName, b: PositionName) => {
      const [ax0, ax1, ay0, ay1] = box(a);
      const [bx0, bx1, by0, by1] = box(b);
      return ax0 < bx1 && bx0 < ax1 && ay0 < by1 && by0 < ay1;
    };
    this.partners = Object.fromEntries(c.positions.map((p) => [p, c.positions.filter((q) => q !== p && !overlaps(p, q))])) as Record<
      PositionName,
      PositionName[]
    >;
    if (sMax === 2 && c.positions.every((p) => this.partners[p].length === 0)) {
      fail(`no two of the positions [${c.positions.join(', ')}] fit side by side at shape size ${size}; use shapesPerImage [1, 1]`);
    }
  }

  /** Which split owns the sample with this key: a fixed hash partition of the sample space. */
  splitOf(key: string): SplitName {
    // Independent of `seed`, so no seed can ever draw a test sample into train.
    const u = hashKey('ett-synthetic-split', key) / 4294967296;
    let acc = 0;
    for (const s of SPLITS) {
      acc += this.config.splitFractions[s];
      if (u < acc) return s;
    }
    return 'test';
  }

  /** Sample `index` of `split`: deterministic from `(seed, split, index)`, never shared between splits. */
  sample(split: SplitName, index: number): SyntheticSample {
    if (!SPLITS.includes(split)) throw new SyntheticConfigError(`split must be one of ${SPLITS.join(', ')}, got ${JSON.stringify(split)}`);
    if (!Number.isInteger(index) || index < 0) throw new SyntheticConfigError(`sample index must be a non-negative integer, got ${index}`);
    if (this.config.splitFractions[split] === 0) throw new SyntheticConfigError(`split ${split} has fraction 0`);
    // Rejection sampling over the hash partition: draw candidates from this split's own stream
    // until one falls in the split's part of the sample space (about 1 / fraction draws).
    for (let attempt = 0; attempt < 100_000; attempt++) {
      const spec = this.drawSpec(keyedRng('ett-synthetic', this.config.seed, split, index, attempt));
      const key = specKey(spec);
      if (this.splitOf(key) !== split) continue;
      const shapes = spec.shapes.map(({ shape, colour, position }) => ({ shape, colour, position }));
      const fields: SyntheticFields = { ...shapes[0]!, text: spec.text, shapes };
      const S = this.config.imageSize;
      return { image: this.render(spec), height: S, width: S, caption: renderCaption(fields), fields, split, index, key };
    }
    throw new SyntheticConfigError(`split ${split} found no sample in 100000 draws; the configured sample space is too small for it`);
  }

  /** A `DataLoader` dataset over the first `size` samples of `split` (defaults to `splitSizes[split]`). */
  dataset(split: SplitName, size = this.config.splitSizes[split]): IndexedDataset {
    return new SyntheticSplitDataset(this, split, size);
  }

  private drawSpec(rng: Rng): SampleSpec {
    const c = this.config;
    const n = between(rng, c.shapesPerImage[0], c.shapesPerImage[1]);
    const j = c.positionJitter;
    const firstChoices = n === 2 ? c.positions.filter((p) => this.partners[p].length > 0) : c.positions;
    const shapes: PlacedShape[] = [];
    for (let i = 0; i < n; i++) {
      const position = i === 0 ? pick(rng, firstChoices) : pick(rng, this.partners[shapes[0]!.position]);
      shapes.push({ shape: pick(rng, c.shapes), colour: pick(rng, c.colours), position, dx: between(rng, -j, j), dy: between(rng, -j, j) });
    }
    const len = between(rng, c.textLength[0], c.textLength[1]);
    let text = '';
    for (let i = 0; i < len; i++) text += c.charset[rng.int(c.charset.length)];
    const free = c.imageSize - this.textWidth(len);
    const textX = c.textPlacement === 'fixed' ? Math.floor(free / 2) : between(rng, 1, free - 1);
    return { shapes, text, textX };
  }

  private textWidth(chars: number): number {
    const k = this.config.glyphScale;
    return chars * this.font.width * k + (chars - 1) * k;
  }

  private render(spec: SampleSpec): Float32Array {
    const c = this.config;
    const S = c.imageSize;
    const img = new Float32Array(S * S * 3);
    const put = (x: number, y: number, rgb: readonly number[]) => {
      const o = (y * S + x) * 3;
      img[o] = rgb[0]! / 127.5 - 1;
      img[o + 1] = rgb[1]! / 127.5 - 1;
      img[o + 2] = rgb[2]! / 127.5 - 1;
    };
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) put(x, y, c.background);
    const r = this.size / 2;
    const t = Math.max(1, this.size / 6); // half-thickness of the cross arms
    for (const s of spec.shapes) {
      const [ax, ay] = this.anchors[s.position];
      const cx = ax + s.dx;
      const cy = ay + s.dy;
      const rgb = SHAPE_COLOURS[s.colour];
      for (let y = Math.max(0, Math.floor(cy - r)); y < Math.min(this.bandTop, Math.ceil(cy + r)); y++) {
        for (let x = Math.max(0, Math.floor(cx - r)); x < Math.min(S, Math.ceil(cx + r)); x++) {
          // Tested at pixel centres so a shape of side s covers s pixels.
          const px = x + 0.5 - cx;
          const py = y + 0.5 - cy;
          if (insideShape(s.shape, px, py, r, t)) put(x, y, rgb);
        }
      }
    }
    const k = c.glyphScale;
    const top = this.bandTop + k;
    let x0 = spec.textX;
    for (const ch of spec.text) {
      const rows = glyphRows(this.font, ch);
      for (let gy = 0; gy < this.font.height; gy++) {
        for (let gx = 0; gx < this.font.width; gx++) {
          if (rows[gy]![gx] !== '1') continue;
          for (let yy = 0; yy < k; yy++) for (let xx = 0; xx < k; xx++) put(x0 + gx * k + xx, top + gy * k + yy, c.textColour);
        }
      }
      x0 += (this.font.width + 1) * k;
    }
    return img;
  }
}

function insideShape(shape: ShapeName, px: number, py: number, r: number, t: number): boolean {
  switch (shape) {
    case 'square':
      return Math.abs(px) < r && Math.abs(py) < r;
    case 'circle':
      return px * px + py * py < r * r;
    case 'triangle':
      // Apex up at (0, -r), base from (-r, r) to (r, r).
      return py > -r && py < r && Math.abs(px) < (r * (py + r)) / (2 * r);
    case 'cross':
      return (Math.abs(px) < r && Math.abs(py) < t) || (Math.abs(px) < t && Math.abs(py) < r);
  }
}

function specKey(spec: SampleSpec): string {
  const shapes = spec.shapes.map((s) => `${s.shape}:${s.colour}:${s.position}:${s.dx},${s.dy}`).join('+');
  return `${shapes}|${spec.text}|${spec.textX}`;
}

/** The caption grammar: `a red circle on the left[ and a blue square on the right]. text: K7.` */
export function renderCaption(fields: Pick<SyntheticFields, 'shapes' | 'text'>): string {
  const scene = fields.shapes.map((s) => `a ${s.colour} ${s.shape} ${POSITION_PHRASES[s.position]}`).join(' and ');
  return `${scene}. text: ${fields.text}.`;
}

const COLOUR_RE = new RegExp(`\\b(${Object.keys(SHAPE_COLOURS).join('|')})\\b`);
const SHAPE_RE = new RegExp(`\\b(${SHAPES.join('|')})\\b`);
const POSITION_RE = /\b(left|right|top|bottom|center|centre|middle)\b/;

/**
 * Recovers the fields from a caption, generated or not, for per-field scoring. Tolerant: each field
 * is found on its own, so `a red squar on the left` still gives colour and position; anything not
 * found is `null`. Text is upper-cased (the font has capitals only).
 */
export function parseCaption(caption: string): ParsedCaption {
  const lower = caption.toLowerCase();
  const at = lower.lastIndexOf('text:');
  const scene = at >= 0 ? lower.slice(0, at) : lower;
  let text: string | null = null;
  if (at >= 0) {
    const m = /^\s*([a-z0-9]+)/.exec(lower.slice(at + 5));
    text = m ? m[1]!.toUpperCase() : null;
  }
  const shapes: ParsedCaption['shapes'] = [];
  for (const clause of scene.split(/\band\b|[.;,]/)) {
    const colour = (COLOUR_RE.exec(clause)?.[1] ?? null) as ColourName | null;
    const shape = (SHAPE_RE.exec(clause)?.[1] ?? null) as ShapeName | null;
    const p = POSITION_RE.exec(clause)?.[1] ?? null;
    const position = (p === 'centre' || p === 'middle' ? 'center' : p) as PositionName | null;
    if (colour || shape || position) shapes.push({ shape, colour, position });
  }
  const first = shapes[0];
  return { shape: first?.shape ?? null, colour: first?.colour ?? null, position: first?.position ?? null, text, shapes };
}

class SyntheticSplitDataset extends IndexedDataset {
  readonly description: string;
  override readonly imageSize: number;

  constructor(
    private readonly source: SyntheticTextImages,
    private readonly split: SplitName,
    private readonly size: number,
  ) {
    super();
    if (!Number.isInteger(size) || size < 0) throw new SyntheticConfigError(`split size must be a non-negative integer, got ${size}`);
    this.description = `synthetic ${split} (seed ${source.config.seed}, ${size} samples)`;
    this.imageSize = source.config.imageSize;
  }

  get length(): number {
    return this.size;
  }

  origin(index: number): SampleOrigin {
    return { file: 'synthetic', key: `${this.split}#${index}` };
  }

  async load(index: number): Promise<LoadedSample> {
    const s = this.source.sample(this.split, index);
    return { image: s.image, height: s.height, width: s.width, caption: s.caption, fields: s.fields, origin: this.origin(index) };
  }
}
