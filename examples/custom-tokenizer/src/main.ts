// A user-written vision tokenizer (patch MLP + classic VQ + linear patch decoder) trained through
// the unchanged ETT pipeline: ETTModel + the ettjs stage recipes + Trainer + evaluateModel.
import { parseArgs } from 'node:util';
import { AutoregressiveLM, ByteTokenizer } from '@ettjs/autoregressive-lm';
import { initBackend } from '@ettjs/backend';
import { Module, type TokenizerOutput, type VisionTokenizer } from '@ettjs/core';
import { SyntheticTextImages } from '@ettjs/data';
import { createVisualAdapter } from '@ettjs/projector';
import { type Stage, Trainer } from '@ettjs/trainer';
import { VectorQuantizer } from '@ettjs/vector-quantizer';
import * as tf from '@tensorflow/tfjs-core';
import { alignment, type ETTBatch, ETTModel, evaluateModel, semantic, syntheticSource, tokenizerPretraining } from 'ettjs';

const { values: args } = parseArgs({
  options: {
    'tokenizer-steps': { type: 'string', default: '40' },
    'alignment-steps': { type: 'string', default: '30' },
    'semantic-steps': { type: 'string', default: '30' },
    'batch-size': { type: 'string', default: '8' },
    'eval-samples': { type: 'string', default: '16' },
    patch: { type: 'string', default: '4' },
    'codebook-size': { type: 'string', default: '128' },
    'code-dim': { type: 'string', default: '16' },
    seed: { type: 'string', default: '0' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(
    'usage: node dist/main.js [--tokenizer-steps 40] [--alignment-steps 30] [--semantic-steps 30] [--batch-size 8]\n' +
      '                         [--eval-samples 16] [--patch 4] [--codebook-size 128] [--code-dim 16] [--seed 0]',
  );
  process.exit(0);
}
const int = (name: keyof typeof args): number => {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} must be a non-negative integer, got ${args[name]}`);
  return v;
};

/** Options of the patch tokenizer. */
interface PatchVQConfig {
  /** Image side. */
  imageSize: number;
  /** Patch side p: each non-overlapping p×p patch becomes one token. */
  patch: number;
  /** Hidden width of the patch MLP. */
  hidden: number;
  codebookSize: number;
  codeDim: number;
  seed: number;
}

/** A Linear layer `x·W + b` on `[N, in]` rows, Glorot-uniform init. */
class Dense extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(inDim: number, outDim: number, seed: number) {
    super();
    const limit = Math.sqrt(6 / (inDim + outDim));
    this.weight = this.addParameter('weight', tf.randomUniform([inDim, outDim], -limit, limit, 'float32', seed));
    this.bias = this.addParameter('bias', tf.zeros([outDim]));
  }
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(x, this.weight), this.bias);
  }
}

/**
 * Patch-MLP encoder → classic VQ (nearest code, straight-through) → linear patch decoder. Every
 * method of `VisionTokenizer` is here; nothing in the ETT pipeline knows this class.
 */
class PatchVQTokenizer extends Module implements VisionTokenizer {
  readonly config: PatchVQConfig;
  readonly enc1: Dense;
  readonly enc2: Dense;
  readonly quantizer: VectorQuantizer;
  readonly dec: Dense;

  constructor(config: PatchVQConfig) {
    super();
    const { imageSize: S, patch: p } = config;
    if (S % p !== 0) throw new Error(`PatchVQTokenizer: imageSize ${S} must be a multiple of the patch ${p}`);
    this.config = config;
    const pix = p * p * 3;
    this.enc1 = this.addModule('enc1', new Dense(pix, config.hidden, config.seed));
    this.enc2 = this.addModule('enc2', new Dense(config.hidden, config.codeDim, config.seed + 1));
    // Dead-code restart keeps a small codebook in use; the codebook learns by gradient so ETT's
    // caption loss can reach it.
    this.quantizer = this.addModule(
      'quantizer',
      new VectorQuantizer({
        codebookSize: config.codebookSize,
        codeDim: config.codeDim,
        init: 'normal',
        seed: config.seed + 2,
        deadCodeRestart: { kind: 'batch-samples', afterSteps: 10 },
      }),
    );
    this.dec = this.addModule('dec', new Dense(config.codeDim, pix, config.seed + 3));
  }

  get codebookSize(): number {
    return this.config.codebookSize;
  }
  get codeDim(): number {
    return this.config.codeDim;
  }
  get downsample(): number {
    return this.config.patch;
  }

  /** `[B, S, S, 3]` → `[B·h·w, p·p·3]` with rank ≤ 4 ops only. */
  #patchify(images: tf.Tensor4D): tf.Tensor2D {
    const [b, S] = images.shape;
    const p = this.config.patch;
    const g = S / p;
    const rows = tf.reshape(images, [b * g, p, g, p * 3]); // [B·h, p, w, p·3]
    return tf.reshape(tf.transpose(rows, [0, 2, 1, 3]), [b * g * g, p * p * 3]);
  }

  /** Inverse of `#patchify`: `[B·h·w, p·p·3]` → `[B, S, S, 3]`. */
  #unpatchify(patches: tf.Tensor2D, b: number, gh: number, gw: number): tf.Tensor4D {
    const p = this.config.patch;
    const t = tf.transpose(tf.reshape(patches, [b * gh, gw, p, p * 3]), [0, 2, 1, 3]); // [B·h, p, w, p·3]
    return tf.reshape(t, [b, gh * p, gw * p, 3]);
  }

  encode(images: tf.Tensor4D): TokenizerOutput & { lossWeights: Record<string, number> } {
    const [b, S, S2, c] = images.shape;
    if (images.rank !== 4 || S !== this.config.imageSize || S2 !== S || c !== 3) {
      throw new Error(
        `PatchVQTokenizer.encode: expected images [B, ${this.config.imageSize}, ${this.config.imageSize}, 3], got [${images.shape}]`,
      );
    }
    const g = S / this.config.patch;
    const z = tf.tidy(() => {
      const h = tf.relu(this.enc1.apply(this.#patchify(images)));
      return tf.reshape(this.enc2.apply(h), [b, g, g, this.codeDim]) as tf.Tensor4D; // [B, h, w, D]
    });
    const r = this.quantizer.quantize(z);
    z.dispose();
    const indices = tf.reshape(r.indices, [b, g * g]) as tf.Tensor2D; // [B, N]
    r.indices.dispose();
    return { quantized: r.quantized, indices, losses: r.losses, lossWeights: r.lossWeights, stats: r.stats };
  }

  decode(quantized: tf.Tensor4D): tf.Tensor4D {
    const [b, gh, gw, d] = quantized.shape;
    if (d !== this.codeDim)
      throw new Error(`PatchVQTokenizer.decode: expected latents [B, h, w, ${this.codeDim}], got [${quantized.shape}]`);
    return tf.tidy(() => this.#unpatchify(this.dec.apply(tf.reshape(quantized, [b * gh * gw, d])), b, gh, gw));
  }

  decodeIndices(indices: tf.Tensor2D, grid: [number, number]): tf.Tensor4D {
    const [h, w] = grid;
    return tf.tidy(() => this.decode(tf.reshape(this.embedIndices(indices), [indices.shape[0], h, w, this.codeDim])));
  }

  embedIndices(indices: tf.Tensor2D): tf.Tensor3D {
    return this.quantizer.embed(indices) as tf.Tensor3D;
  }

  // Hooks the recipes call when present: codebook bookkeeping after each step, train/eval mode.
  update(): void {
    this.quantizer.update();
  }
  train(): this {
    this.quantizer.train();
    return this;
  }
  eval(): this {
    this.quantizer.eval();
    return this;
  }
}

const report = await initBackend();
console.log(`backend: ${report.backend} ${report.version} (${report.reason})`);

const seed = int('seed');
const imageSize = 32;
const batchSize = int('batch-size');
const tokenizer = new PatchVQTokenizer({
  imageSize,
  patch: int('patch'),
  hidden: 64,
  codebookSize: int('codebook-size'),
  codeDim: int('code-dim'),
  seed,
});
const text = new ByteTokenizer();
const numVisual = (imageSize / tokenizer.downsample) ** 2;
const lm = new AutoregressiveLM(
  {
    architecture: 'qwen2',
    vocabSize: text.vocabSize,
    hiddenSize: 128,
    intermediateSize: 256,
    numLayers: 2,
    numHeads: 4,
    numKVHeads: 2,
    maxPositionEmbeddings: numVisual + 96,
  },
  { seed },
);
const adapter = createVisualAdapter({ kind: 'projector', inputDim: tokenizer.codeDim, outputDim: lm.hiddenSize });
// No discriminator: the recipes switch the GAN term off by themselves.
const model = new ETTModel({ tokenizer, adapter, lm, text, imageSize });
console.log(
  `PatchVQTokenizer: ${tokenizer.config.patch}×${tokenizer.config.patch} patches → ${numVisual} tokens, ` +
    `K = ${tokenizer.codebookSize}, D = ${tokenizer.codeDim}, ${tokenizer.parameterCount()} parameters; model ${model.parameterCount()} parameters`,
);

// Classic VQ's terms are `codebook` and `commitment` (IBQ's are `quant`/`entropy`), so L_vq must be
// told their weights: the ones the quantizer proposes in `lossWeights` (1 and β = 0.25).
const probe = tf.tidy(() => tf.zeros([1, imageSize, imageSize, 3]) as tf.Tensor4D);
const probeOut = tokenizer.eval().encode(probe);
const quantizerWeights = { ...probeOut.lossWeights };
tf.dispose([probe, probeOut.quantized, probeOut.indices, ...Object.values(probeOut.losses)]);
tokenizer.train();
const vq = { quantizerWeights };
console.log(`L_vq quantizer weights: ${JSON.stringify(quantizerWeights)}`);

const data = new SyntheticTextImages({ imageSize, seed });
const evalSet = Array.from({ length: int('eval-samples') }, (_, i) => data.sample('validation', i));

async function run(stage: Stage<ETTBatch>, stageSeed: number): Promise<void> {
  const t0 = Date.now();
  const trainer = new Trainer<ETTBatch>({
    model,
    data: syntheticSource(model, data, batchSize, stageSeed),
    stages: [stage],
    seed: stageSeed,
    progress: 'lines',
    progressEvery: 20,
  });
  await trainer.fit();
  console.log(`  ${stage.name}: ${stage.steps} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

function show(title: string, e: Awaited<ReturnType<typeof evaluateModel>>): void {
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  console.log(
    `${title}: shape ${pct(e.shape)}, colour ${pct(e.colour)}, position ${pct(e.position)}, text exact ${pct(e.textExact)}, ` +
      `text chars ${pct(e.textChar)}, PSNR ${e.psnr.toFixed(2)} dB, code usage ${pct(e.usage)}`,
  );
  for (const ex of e.examples.slice(0, 3)) console.log(`    ref: ${ex.reference}\n    got: ${ex.generated}`);
}

try {
  console.log(`stage 0: tokenizer pretraining (L_vq), ${int('tokenizer-steps')} steps`);
  await run(tokenizerPretraining(model, { steps: int('tokenizer-steps'), lr: 2e-3, vq }), seed);
  console.log(`stage 1: alignment (projector only, L_cap), ${int('alignment-steps')} steps`);
  await run(alignment(model, { steps: int('alignment-steps'), lr: 2e-3 }), seed + 1);
  show('after stage 1', await evaluateModel(model, evalSet));
  console.log(`stage 2: ETT (tokenizer + projector + LM, L_cap + 0.25·L_vq), ${int('semantic-steps')} steps`);
  await run(semantic(model, { steps: int('semantic-steps'), lr: 1e-3, arm: 'ett', alpha: 0.25, vq }), seed + 2);
  show('after stage 2 (ETT)', await evaluateModel(model, evalSet));
} finally {
  model.dispose();
}
console.log(`tensors left: ${tf.memory().numTensors}`);
