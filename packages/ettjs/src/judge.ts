import fs from 'node:fs';
import path from 'node:path';
import {
  AdamW,
  loadSafetensorsFile,
  Module,
  ModuleList,
  namedVariableGrads,
  Rng,
  safetensorsToTensors,
  saveSafetensorsFile,
} from '@ettjs/core';
import {
  type ColourName,
  DEFAULT_SYNTHETIC_CONFIG,
  parseCaption,
  type ShapeName,
  type SyntheticConfig,
  type SyntheticFields,
  SyntheticTextImages,
} from '@ettjs/data';
import * as tf from '@tensorflow/tfjs-core';

/**
 * The generation judge (issue #9): a small conv classifier, trained on the synthetic training
 * split, that says which shape and which colour an image shows. Generated images are scored by
 * whether the judge's reading matches the prompt: a toy stand-in for GenEval's object/colour checks
 * (the paper's generation metric), whose detector is likewise a trained model. A judge is only as
 * trustworthy as its accuracy on *real* images, so `trainJudge` measures that on held-out samples
 * and the judge carries the figure with it (`judge.training.heldOut`).
 *
 * The network follows the backend rules of MEASUREMENTS.md: stride-2 2×2 convs (no max-pooling,
 * no depthToSpace), then a flatten + dense head with no pooling at all (global pooling would
 * throw away where the shape's edges are relative to each other); everything is rank-2 matMuls
 * and rank-4 reshapes on `Module`s, so it trains in seconds on WASM and on the cpu backend and
 * saves as safetensors.
 */

/** The judge's network and label space. */
export interface JudgeConfig {
  /** Image side the judge reads (it must match the images it scores). Defaults to 32. */
  imageSize: number;
  /** Shape classes, in head order. Defaults to every shape of the synthetic set. */
  shapes: readonly ShapeName[];
  /** Colour classes, in head order. Defaults to every colour of the synthetic set. */
  colours: readonly ColourName[];
  /** Output channels of the stride-2 2×2 convs, one conv each (each halves the side, so `imageSize` must divide by 2^length). Defaults to [16, 32, 32]. */
  channels: readonly number[];
  /** Width of the shared dense layer between the flattened features and the two heads. Defaults to 64. */
  hidden: number;
  /** Seed of the weight init. Defaults to 0. */
  seed: number;
}

export const DEFAULT_JUDGE_CONFIG: Readonly<JudgeConfig> = {
  imageSize: DEFAULT_SYNTHETIC_CONFIG.imageSize,
  shapes: DEFAULT_SYNTHETIC_CONFIG.shapes,
  colours: DEFAULT_SYNTHETIC_CONFIG.colours,
  channels: [16, 32, 32],
  hidden: 64,
  seed: 0,
};

/** What the judge expects of an image: a prompt (parsed like a caption) or the fields themselves. */
export type JudgeTarget = string | { shape: ShapeName; colour: ColourName };

/** The judge's reading of one image. */
export interface JudgeReading {
  shape: ShapeName;
  colour: ColourName;
  /** Softmax probability of the chosen shape / colour. */
  shapeConfidence: number;
  colourConfidence: number;
}

/** How well images match their targets, by the judge. */
export interface JudgeScore {
  samples: number;
  /** Fraction of images whose judged shape is the target's. */
  shape: number;
  /** Fraction of images whose judged colour is the target's. */
  colour: number;
  /** Fraction with both right (GenEval's "colour attribution" style: one object, both attributes). */
  both: number;
}

/** How a judge was trained; saved with it so a run that reuses it can report its trustworthiness. */
export interface JudgeTrainingInfo {
  steps: number;
  batchSize: number;
  /** The synthetic-set options it was trained on (`shapesPerImage` is always [1, 1]). */
  data: Partial<SyntheticConfig>;
  /** The judge's own accuracy on held-out *real* images of the validation split. */
  heldOut: JudgeScore;
  /** Training wall time. */
  ms: number;
}

/** A judge input or target that does not fit: wrong image shape, a prompt naming no shape, an unknown class. */
export class JudgeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JudgeError';
  }
}

const CONFIG_FILE = 'judge.json';
const WEIGHTS_FILE = 'judge.safetensors';

/**
 * A dense layer `[B, in] → [B, out]` as one rank-2 matMul (the fast XNNPACK path on WASM).
 * The weight is drawn from core's `Rng`, not `tf.randomNormal(..., seed)`: tfjs 4.22 treats a seed
 * of 0 as "no seed" (`seed ? seed : Math.random()` in its Gaussian sampler), so the first conv of a
 * judge with the default seed 0 got a different init on every call and same-seed training runs
 * diverged from step 0 (held-out shape accuracy 0.34–0.89 after 100 steps).
 */
class Dense extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(inDim: number, outDim: number, std: number, seed: number) {
    super();
    this.weight = this.addParameter('weight', new Rng(seed).fork('judge-dense-init').normalTensor([inDim, outDim], std));
    this.bias = this.addParameter('bias', tf.zeros([outDim]));
  }
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => tf.add(tf.matMul(x, this.weight as tf.Tensor2D), this.bias));
  }
}

/**
 * A 2×2 convolution with stride 2 (`[B, H, W, C] → [B, H/2, W/2, out]`), computed as a patch
 * reshape and one rank-2 matMul: exactly `conv2d(x, w, 2, 'valid')` with `w` reshaped to
 * `[2, 2, C, out]`, but its gradient is a matMul on every backend, where tfjs-cpu's conv filter
 * gradient takes seconds per step (MEASUREMENTS.md §3) and the test suite runs on cpu.
 * Only rank-4 reshapes and transposes (rank-5 slices are slow on WASM).
 */
class PatchConv extends Module {
  readonly dense: Dense;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    seed: number,
  ) {
    super();
    // He init over the 2·2·C inputs of a patch (rows ordered [dy, dx, c], as the conv kernel's).
    this.dense = this.addModule('proj', new Dense(4 * inChannels, outChannels, Math.sqrt(2 / (4 * inChannels)), seed));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    const [B, H, W, C] = x.shape;
    return tf.tidy(() => {
      const rows = tf.reshape(x, [B * (H / 2), 2, W / 2, 2 * C]); // [B·H/2, dy, W/2, (dx, c)]
      const patches = tf.reshape(tf.transpose(rows, [0, 2, 1, 3]), [(B * H * W) / 4, 4 * C]); // [B·H/2·W/2, (dy, dx, c)]
      return tf.reshape(this.dense.forward(patches as tf.Tensor2D), [B, H / 2, W / 2, this.outChannels]) as tf.Tensor4D;
    });
  }
}

/** The shape/colour classifier. Build it with `trainJudge`, or `GenerationJudge.load` a saved one. */
export class GenerationJudge extends Module {
  readonly config: Readonly<JudgeConfig>;
  /** Set by `trainJudge` and kept by `save` / `load`. */
  training?: JudgeTrainingInfo;
  readonly #convs: ModuleList<PatchConv>;
  readonly #fc: Dense;
  readonly #shapeHead: Dense;
  readonly #colourHead: Dense;

  constructor(config: Partial<JudgeConfig> = {}) {
    super();
    // An option passed as `undefined` keeps its default.
    const given = Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined));
    const c: JudgeConfig = { ...DEFAULT_JUDGE_CONFIG, ...given };
    const fail = (m: string): never => {
      throw new JudgeError(`GenerationJudge: ${m}`);
    };
    if (!Number.isInteger(c.imageSize) || c.imageSize < 4) fail(`imageSize must be an integer >= 4, got ${c.imageSize}`);
    if (c.channels.length === 0 || c.channels.some((ch) => !Number.isInteger(ch) || ch < 1))
      fail(`channels must list at least one positive integer, got [${c.channels}]`);
    if (!Number.isInteger(c.hidden) || c.hidden < 1) fail(`hidden must be a positive integer, got ${c.hidden}`);
    if (!Number.isSafeInteger(c.seed)) fail(`seed must be an integer, got ${c.seed}`);
    if (c.shapes.length < 2 || c.colours.length < 2)
      fail(`needs at least two shapes and two colours to tell apart, got [${c.shapes}] and [${c.colours}]`);
    this.config = Object.freeze({ ...c, shapes: [...c.shapes], colours: [...c.colours], channels: [...c.channels] });
    const side = c.imageSize / 2 ** c.channels.length;
    if (!Number.isInteger(side))
      fail(
        `imageSize ${c.imageSize} does not halve ${c.channels.length} times (one per conv); use a multiple of ${2 ** c.channels.length} or fewer channels`,
      );
    let cin = 3;
    const convs = new ModuleList<PatchConv>();
    c.channels.forEach((cout, i) => {
      convs.push(new PatchConv(cin, cout, c.seed + i));
      cin = cout;
    });
    const features = side * side * cin;
    const n = c.channels.length;
    this.#convs = this.addModule('convs', convs);
    this.#fc = this.addModule('fc', new Dense(features, c.hidden, Math.sqrt(2 / features), c.seed + n));
    this.#shapeHead = this.addModule('shape', new Dense(c.hidden, c.shapes.length, Math.sqrt(1 / c.hidden), c.seed + n + 1));
    this.#colourHead = this.addModule('colour', new Dense(c.hidden, c.colours.length, Math.sqrt(1 / c.hidden), c.seed + n + 2));
  }

  #checkImages(images: tf.Tensor4D, where: string): void {
    const S = this.config.imageSize;
    if (!(images instanceof tf.Tensor) || images.rank !== 4 || images.shape[1] !== S || images.shape[2] !== S || images.shape[3] !== 3) {
      throw new JudgeError(
        `${where}: expected images [B, ${S}, ${S}, 3] in [-1, 1], got ${images instanceof tf.Tensor ? `[${images.shape}]` : typeof images}; ` +
          `a judge reads one image size: train one with trainJudge({ data: { imageSize: ${images instanceof tf.Tensor ? images.shape[1] : S} } })`,
      );
    }
  }

  /** Shape and colour logits, `[B, shapes]` and `[B, colours]`, for images `[B, S, S, 3]` in [-1, 1]. */
  forward(images: tf.Tensor4D): { shape: tf.Tensor2D; colour: tf.Tensor2D } {
    this.#checkImages(images, 'GenerationJudge.forward');
    return tf.tidy(() => {
      // Decoded images can overshoot [-1, 1]; the judge never saw such values in training.
      let x: tf.Tensor4D = tf.clipByValue(images, -1, 1);
      for (const conv of this.#convs) x = tf.relu(conv.forward(x));
      const flat = tf.reshape(x, [x.shape[0], -1]) as tf.Tensor2D;
      const h = tf.relu(this.#fc.forward(flat));
      return { shape: this.#shapeHead.forward(h), colour: this.#colourHead.forward(h) };
    });
  }

  /** Summed cross-entropy of both heads against class indices (the training loss). */
  loss(images: tf.Tensor4D, shapeLabels: tf.Tensor1D, colourLabels: tf.Tensor1D): tf.Scalar {
    return tf.tidy(() => {
      const { shape, colour } = this.forward(images);
      const ce = (logits: tf.Tensor2D, labels: tf.Tensor1D) =>
        tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, logits.shape[1]), tf.logSoftmax(logits)), 1)));
      return tf.add(ce(shape, shapeLabels), ce(colour, colourLabels)) as tf.Scalar;
    });
  }

  /** The judge's reading of each image. The images are not disposed. */
  async classify(images: tf.Tensor4D): Promise<JudgeReading[]> {
    const probs = tf.tidy(() => {
      const { shape, colour } = this.forward(images);
      return [tf.softmax(shape), tf.softmax(colour)];
    });
    const [ps, pc] = await Promise.all(probs.map((p) => p.data()));
    tf.dispose(probs);
    const { shapes, colours } = this.config;
    const argmax = (p: ArrayLike<number>, from: number, n: number) => {
      let best = 0;
      for (let j = 1; j < n; j++) if (p[from + j] > p[from + best]) best = j;
      return best;
    };
    return Array.from({ length: images.shape[0] }, (_, i) => {
      const s = argmax(ps, i * shapes.length, shapes.length);
      const c = argmax(pc, i * colours.length, colours.length);
      return {
        shape: shapes[s],
        colour: colours[c],
        shapeConfidence: ps[i * shapes.length + s],
        colourConfidence: pc[i * colours.length + c],
      };
    });
  }

  /** The shape and colour a target asks for; throws `JudgeError` when the judge cannot check it. */
  targetFields(target: JudgeTarget): { shape: ShapeName; colour: ColourName } {
    const t = typeof target === 'string' ? parseCaption(target) : target;
    if (!t.shape || !t.colour) {
      throw new JudgeError(
        `GenerationJudge: the prompt ${JSON.stringify(target)} names no ${t.shape ? 'colour' : 'shape'}; ` +
          `the judge checks prompts like 'a red circle on the left. text: K7.' (shapes ${this.config.shapes.join('/')}, colours ${this.config.colours.join('/')})`,
      );
    }
    if (!this.config.shapes.includes(t.shape) || !this.config.colours.includes(t.colour)) {
      throw new JudgeError(
        `GenerationJudge: target ${t.colour} ${t.shape} is outside the judge's classes (shapes ${this.config.shapes.join(', ')}; colours ${this.config.colours.join(', ')}); train a judge on data with those classes`,
      );
    }
    return { shape: t.shape, colour: t.colour };
  }

  /**
   * Scores images against what was asked for: judged shape / colour / both equal to the target's.
   * Every target is checked before anything runs. The images are not disposed.
   */
  async score(images: tf.Tensor4D, targets: readonly JudgeTarget[]): Promise<JudgeScore> {
    this.#checkImages(images, 'GenerationJudge.score');
    if (targets.length !== images.shape[0])
      throw new JudgeError(`GenerationJudge.score: ${images.shape[0]} images but ${targets.length} targets`);
    const want = targets.map((t) => this.targetFields(t));
    return scoreReadings(await this.classify(images), want);
  }

  /** Writes `judge.json` (config, training info) and `judge.safetensors` into `dir`. */
  async save(dir: string): Promise<void> {
    fs.mkdirSync(dir, { recursive: true });
    await saveSafetensorsFile(path.join(dir, WEIGHTS_FILE), this.stateDict());
    const file = path.join(dir, CONFIG_FILE);
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, `${JSON.stringify({ config: this.config, training: this.training }, null, 2)}\n`);
    fs.renameSync(tmp, file);
  }

  /** True when `dir` holds a saved judge. */
  static exists(dir: string): boolean {
    return fs.existsSync(path.join(dir, CONFIG_FILE)) && fs.existsSync(path.join(dir, WEIGHTS_FILE));
  }

  /** Loads a judge written by `save`. */
  static async load(dir: string): Promise<GenerationJudge> {
    if (!GenerationJudge.exists(dir)) {
      throw new JudgeError(`${dir} holds no judge (${CONFIG_FILE} + ${WEIGHTS_FILE}); train one with trainJudge() and judge.save(dir)`);
    }
    const meta = JSON.parse(fs.readFileSync(path.join(dir, CONFIG_FILE), 'utf8')) as { config: JudgeConfig; training?: JudgeTrainingInfo };
    const judge = new GenerationJudge(meta.config);
    try {
      const tensors = safetensorsToTensors(await loadSafetensorsFile(path.join(dir, WEIGHTS_FILE)));
      try {
        judge.loadStateDict(tensors);
      } finally {
        tf.dispose(Object.values(tensors));
      }
    } catch (e) {
      judge.dispose();
      throw e;
    }
    judge.training = meta.training;
    return judge;
  }
}

/** Compares readings with wanted fields. */
export function scoreReadings(readings: readonly JudgeReading[], want: readonly { shape: ShapeName; colour: ColourName }[]): JudgeScore {
  const n = readings.length;
  if (n === 0) throw new JudgeError('scoreReadings: nothing to score');
  let shape = 0;
  let colour = 0;
  let both = 0;
  readings.forEach((r, i) => {
    const s = r.shape === want[i].shape;
    const c = r.colour === want[i].colour;
    shape += s ? 1 : 0;
    colour += c ? 1 : 0;
    both += s && c ? 1 : 0;
  });
  return { samples: n, shape: shape / n, colour: colour / n, both: both / n };
}

/** Options of `trainJudge`. */
export interface TrainJudgeOptions extends Partial<Omit<JudgeConfig, 'imageSize' | 'shapes' | 'colours'>> {
  /**
   * The synthetic set to learn from (image size, shapes, colours, glyph scale, ...); the judge's
   * image size and classes come from it, and `shapesPerImage` is forced to [1, 1] so every image has
   * one right answer. Defaults to `DEFAULT_SYNTHETIC_CONFIG` (32 px, all shapes and colours).
   */
  data?: Partial<SyntheticConfig>;
  /**
   * Optimizer steps. Defaults to 500: at 32 px (seed 0) that reads 98.4 % of 256 held-out shapes and
   * 100 % of colours (300 steps: 89.8 % / 100 %), in about a minute on 2 busy cores with WASM.
   */
  steps?: number;
  /** Images per step. Defaults to 32. */
  batchSize?: number;
  /** Peak AdamW learning rate (5 % warmup, cosine to 10 %). Defaults to 1e-2. */
  lr?: number;
  /** AdamW weight decay. Defaults to 1e-4. */
  weightDecay?: number;
  /**
   * Std of the Gaussian noise added to training images, and the fraction of training images
   * blurred with a 3×3 binomial kernel: decoded images are noisy and blurry, the synthetic ones are
   * crisp, and a judge that has only seen crisp ones misreads decoded ones. Defaults to
   * `{ noise: 0.1, blur: 0.5 }`.
   */
  augment?: { noise?: number; blur?: number };
  /** Validation-split images its held-out accuracy is measured on. Defaults to 256. */
  heldOut?: number;
  /** Progress lines (every 100 steps and the result). Defaults to none. */
  log?: (line: string) => void;
}

/** Renders `count` synthetic samples from `start` (wrapping at `size`) as a batch with class labels. */
function labelledBatch(
  data: SyntheticTextImages,
  split: 'train' | 'validation' | 'test',
  start: number,
  count: number,
  size: number,
  judge: GenerationJudge,
) {
  const S = data.config.imageSize;
  const pixels = new Float32Array(count * S * S * 3);
  const shape = new Int32Array(count);
  const colour = new Int32Array(count);
  const fields: SyntheticFields[] = [];
  for (let j = 0; j < count; j++) {
    const s = data.sample(split, (start + j) % size);
    pixels.set(s.image, j * S * S * 3);
    shape[j] = judge.config.shapes.indexOf(s.fields.shape);
    colour[j] = judge.config.colours.indexOf(s.fields.colour);
    fields.push(s.fields);
  }
  return { pixels, shape, colour, fields, shape4d: [count, S, S, 3] as [number, number, number, number] };
}

/**
 * Blurs a random `blur` fraction of the images with a 3×3 binomial kernel (edges clamped) and adds
 * N(0, noise²) to every pixel, in place. Plain JS on the batch's pixels: it needs no gradient, and
 * as tensor ops it cost more than the training step itself on WASM.
 */
function augmentPixels(pixels: Float32Array, count: number, side: number, noise: number, blur: number, rng: Rng): void {
  const per = side * side * 3;
  const src = new Float32Array(per);
  const w = [0.25, 0.5, 0.25];
  for (let n = 0; n < count; n++) {
    const img = pixels.subarray(n * per, (n + 1) * per);
    if (blur > 0 && rng.next() < blur) {
      src.set(img);
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          for (let c = 0; c < 3; c++) {
            let acc = 0;
            for (let dy = -1; dy <= 1; dy++) {
              const yy = Math.min(side - 1, Math.max(0, y + dy));
              for (let dx = -1; dx <= 1; dx++) {
                const xx = Math.min(side - 1, Math.max(0, x + dx));
                acc += w[dy + 1] * w[dx + 1] * src[(yy * side + xx) * 3 + c];
              }
            }
            img[(y * side + x) * 3 + c] = acc;
          }
        }
      }
    }
    if (noise > 0) for (let i = 0; i < per; i++) img[i] += rng.normal(0, noise);
  }
}

/**
 * Trains a judge on the synthetic training split (shape and colour labels of each image) and
 * measures its accuracy on held-out validation images, kept as `judge.training.heldOut`.
 */
export async function trainJudge(options: TrainJudgeOptions = {}): Promise<GenerationJudge> {
  const t0 = Date.now();
  const { data: dataOptions = {}, steps = 500, batchSize = 32, lr = 1e-2, weightDecay = 1e-4, heldOut = 256, log, augment = {} } = options;
  for (const [k, v] of [
    ['steps', steps],
    ['batchSize', batchSize],
    ['heldOut', heldOut],
  ] as const) {
    if (!Number.isInteger(v) || v < (k === 'steps' ? 0 : 1))
      throw new JudgeError(`trainJudge: ${k} must be a ${k === 'steps' ? 'non-negative' : 'positive'} integer, got ${v}`);
  }
  const noise = augment.noise ?? 0.1;
  const blur = augment.blur ?? 0.5;
  const seed = options.seed ?? DEFAULT_JUDGE_CONFIG.seed;
  const dataConfig: Partial<SyntheticConfig> = { ...dataOptions, shapesPerImage: [1, 1] };
  const data = new SyntheticTextImages(dataConfig);
  const judge = new GenerationJudge({
    imageSize: data.config.imageSize,
    shapes: data.config.shapes,
    colours: data.config.colours,
    channels: options.channels,
    hidden: options.hidden,
    seed,
  });
  const rng = new Rng(seed).fork('judge-augment');
  const opt = new AdamW(judge.namedTrainableVariables(), { lr, weightDecay });
  const trainSize = data.config.splitSizes.train;
  const warmup = Math.max(1, Math.round(0.05 * steps));
  try {
    for (let step = 0; step < steps; step++) {
      const progress =
        step < warmup ? (step + 1) / warmup : 0.1 + 0.45 * (1 + Math.cos((Math.PI * (step - warmup)) / Math.max(1, steps - warmup)));
      opt.setLearningRate(lr * progress);
      const b = labelledBatch(data, 'train', step * batchSize, batchSize, trainSize, judge);
      augmentPixels(b.pixels, batchSize, data.config.imageSize, noise, blur, rng);
      const x = tf.tensor4d(b.pixels, b.shape4d);
      const ys = tf.tensor1d(b.shape, 'int32');
      const yc = tf.tensor1d(b.colour, 'int32');
      const { value, grads } = namedVariableGrads(() => judge.loss(x, ys, yc), judge.namedTrainableVariables());
      opt.step(grads);
      if (log && (step % 100 === 0 || step === steps - 1)) log(`judge step ${step}: loss ${(await value.data())[0].toFixed(4)}`);
      tf.dispose([x, ys, yc, value, ...Object.values(grads)]);
    }
  } catch (e) {
    judge.dispose();
    throw e;
  } finally {
    opt.dispose();
  }
  const readings: JudgeReading[] = [];
  const fields: SyntheticFields[] = [];
  for (let i = 0; i < heldOut; i += 256) {
    const v = labelledBatch(data, 'validation', i, Math.min(256, heldOut - i), data.config.splitSizes.validation, judge);
    const images = tf.tensor4d(v.pixels, v.shape4d);
    try {
      readings.push(...(await judge.classify(images)));
      fields.push(...v.fields);
    } finally {
      images.dispose();
    }
  }
  const score = scoreReadings(readings, fields);
  judge.training = { steps, batchSize, data: dataConfig, heldOut: score, ms: Date.now() - t0 };
  log?.(
    `judge held-out accuracy (${heldOut} real validation images): shape ${pct(score.shape)}, colour ${pct(score.colour)}, both ${pct(score.both)}`,
  );
  return judge;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
