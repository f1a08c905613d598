import { checkOnHost, Module, seededRandomNormal, untaped } from '@ettjs/core';
import type { VisualAdapter } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { expectKind, loadAdapterWeights, readAdapterConfig, saveAdapterCheckpoint } from './adapter-checkpoint';
import { checkConfigKeys, checkPositiveInt } from './adapter-config';
import { AdapterInputError } from './adapter-input-error';

/** Options of the frozen-index baseline's embedding table. */
export interface IndexEmbeddingConfig {
  /** Number of codes K (rows of the table). Required. */
  codebookSize: number;
  /** LM hidden size C (width of each row). Required. */
  outputDim: number;
  /**
   * Std of the normal init. Defaults to 0.02: HF's `initializer_range`, the init new vocabulary
   * rows get when Emu3/Chameleon-style models extend an LM's embedding table with visual codes.
   */
  initStd: number;
  /** Seed for the init; unseeded when omitted. Defaults to undefined. */
  seed?: number;
}

export const DEFAULT_INDEX_EMBEDDING_CONFIG: Omit<IndexEmbeddingConfig, 'codebookSize' | 'outputDim'> = {
  initStd: 0.02,
};

const KEYS = ['codebookSize', 'outputDim', 'initStd', 'seed'] as const;

/**
 * The frozen-index baseline (Emu3 / Chameleon style; the "Index" rows of the paper's Table 4): the
 * LM sees a fresh learned table `weight` `[K, C]` looked up by code index, so no gradient reaches
 * the tokenizer. The parameter is named `weight`, as PyTorch's `nn.Embedding`.
 */
export class IndexEmbedding extends Module implements VisualAdapter {
  readonly config: Readonly<IndexEmbeddingConfig>;
  readonly weight: tf.Variable; // [K, C]

  constructor(config: Partial<IndexEmbeddingConfig> & Pick<IndexEmbeddingConfig, 'codebookSize' | 'outputDim'>) {
    super();
    checkConfigKeys('IndexEmbedding', config, KEYS);
    const c: IndexEmbeddingConfig = { ...DEFAULT_INDEX_EMBEDDING_CONFIG, ...config };
    checkPositiveInt('IndexEmbedding', 'codebookSize', c.codebookSize);
    checkPositiveInt('IndexEmbedding', 'outputDim', c.outputDim);
    if (typeof c.initStd !== 'number' || !(c.initStd >= 0)) {
      throw new Error(`IndexEmbedding: initStd must be a non-negative number, got ${JSON.stringify(c.initStd)}`);
    }
    this.config = Object.freeze(c);
    this.weight = this.addParameter('weight', seededRandomNormal([c.codebookSize, c.outputDim], 0, c.initStd, c.seed));
  }

  /** Rebuilds a table saved with `savePretrained` (config.json + model.safetensors). */
  static async fromPretrained(dir: string): Promise<IndexEmbedding> {
    const { kind, config } = await readAdapterConfig(dir);
    expectKind(dir, kind, 'index', 'IndexEmbedding');
    return loadAdapterWeights(dir, new IndexEmbedding(config as unknown as IndexEmbeddingConfig));
  }

  /** Writes `dir/config.json` and `dir/model.safetensors` (see `loadVisualAdapter`). */
  async savePretrained(dir: string): Promise<void> {
    const { seed: _seed, ...config } = this.config;
    await saveAdapterCheckpoint(dir, 'index', config, this);
  }

  get codebookSize(): number {
    return this.config.codebookSize;
  }

  get outputDim(): number {
    return this.config.outputDim;
  }

  /**
   * `indices` `[B, N]` int32 in [0, K) → rows `[B, N, C]`. `quantized` is ignored (it is accepted
   * so both adapters share one call); when given, its `[B, N]` must match the indices'.
   *
   * The indices are read back once (to check the range) and re-uploaded as a fresh tensor. That
   * detaches them from any gradient tape: tfjs fails with "gradient of input indices must have
   * float32 dtype" when gather's indices were computed inside a taped function (the tokenizer's
   * argmax), and the baseline must not pass gradient to the tokenizer anyway.
   */
  apply(input: { quantized?: tf.Tensor3D; indices: tf.Tensor2D }): tf.Tensor3D {
    const { indices, quantized } = input;
    if (!indices || indices.rank !== 2) {
      throw new AdapterInputError(
        `IndexEmbedding.apply: indices must be [B, N] int32, got ${indices ? `rank ${indices.rank} [${indices.shape}]` : String(indices)}`,
      );
    }
    if (indices.dtype !== 'int32') {
      throw new AdapterInputError(`IndexEmbedding.apply: indices must be int32, got ${indices.dtype}; use tf.cast(indices, 'int32')`);
    }
    const [b, n] = indices.shape;
    if (quantized && (quantized.rank !== 3 || quantized.shape[0] !== b || quantized.shape[1] !== n)) {
      throw new AdapterInputError(
        `IndexEmbedding.apply: quantized [${quantized.shape}] does not match indices [${indices.shape}]; expected [${b}, ${n}, D]`,
      );
    }
    const k = this.codebookSize;
    // tfjs's gather returns zeros for an out-of-range index: check on the host (at once on CPU/WASM,
    // at the Trainer's settleHostChecks() on WebGPU).
    checkOnHost(tf.clone(indices), (values) => {
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (v < 0 || v >= k) {
          throw new AdapterInputError(
            `IndexEmbedding.apply: index ${v} at flat position ${i} is outside [0, ${k}); the table has codebookSize=${k} rows. ` +
              "Build it with codebookSize equal to the tokenizer's codebookSize.",
          );
        }
      }
    });
    return tf.tidy(() => {
      // Detached: indices computed inside the tape (an argmax) would otherwise fail gather's backprop.
      const flat = untaped(() => tf.reshape(tf.clone(indices), [-1]) as tf.Tensor1D);
      const rows = tf.gather(this.weight, flat); // [B*N, C]
      return tf.reshape(rows, [b, n, this.outputDim]); // [B, N, C]
    });
  }
}
