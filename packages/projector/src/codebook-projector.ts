import { Module } from '@ettjs/core';
import type { VisualAdapter } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { expectKind, loadAdapterWeights, readAdapterConfig, saveAdapterCheckpoint } from './adapter-checkpoint';
import { checkConfigKeys, checkPositiveInt } from './adapter-config';
import { AdapterInputError } from './adapter-input-error';
import { type GeluKind, gelu } from './gelu';
import { Linear } from './linear';

/** Options of the ETT projector (PAPER.md §1 "Projector"). */
export interface CodebookProjectorConfig {
  /** Code dimension D of the tokenizer's codebook. Required. */
  inputDim: number;
  /** LM hidden size C (1536 for Qwen2.5-1.5B, the paper's LM). Required. */
  outputDim: number;
  /**
   * Number of Linear layers, GELU between consecutive ones. Defaults to 2: LLaVA's `mlp2x_gelu`
   * (the paper only says "an MLP with GeLU"; LLaVA's builder is the inferred template). 1 is
   * LLaVA's `linear` projector.
   */
  depth: number;
  /** Width of the hidden layers. Defaults to `outputDim`, as in LLaVA's `mlpNx_gelu`. */
  hiddenDim?: number;
  /** GELU form. Defaults to `'gelu'`: exact erf GELU, PyTorch `nn.GELU()`'s default (LLaVA). */
  activation: GeluKind;
  /** Whether the Linear layers have biases. Defaults to `true` (LLaVA). */
  bias: boolean;
  /** Seed for the PyTorch-style uniform init; unseeded when omitted. Defaults to undefined. */
  seed?: number;
}

export const DEFAULT_CODEBOOK_PROJECTOR_CONFIG: Omit<CodebookProjectorConfig, 'inputDim' | 'outputDim'> = {
  depth: 2,
  activation: 'gelu',
  bias: true,
};

const KEYS = ['inputDim', 'outputDim', 'depth', 'hiddenDim', 'activation', 'bias', 'seed'] as const;

/** Holds the Linear layers at nn.Sequential's indices: GELU takes the odd slots, so Linears sit at 0, 2, 4, ... */
class SequentialSlots extends Module {
  put(index: number, module: Module): void {
    this.addModule(String(index), module);
  }
}

/**
 * ETT's input path: codebook embeddings `[B, N, D]` → MLP with GELU → LM embeddings `[B, N, C]`.
 * Gradients flow into the codebook embeddings, which is what lets the caption loss tune the
 * tokenizer end to end.
 *
 * Parameters are named as LLaVA's `nn.Sequential` projector (`layers.0.weight`, `layers.0.bias`,
 * `layers.2.weight`, ...; odd indices are the parameter-free GELUs) and stored in PyTorch layout
 * (`weight` is `[out, in]`), so LLaVA's `model.mm_projector.*` tensors load after renaming the
 * prefix `model.mm_projector.` → `layers.`.
 */
export class CodebookProjector extends Module implements VisualAdapter {
  readonly config: Readonly<CodebookProjectorConfig>;
  readonly linears: readonly Linear[];

  constructor(config: Partial<CodebookProjectorConfig> & Pick<CodebookProjectorConfig, 'inputDim' | 'outputDim'>) {
    super();
    checkConfigKeys('CodebookProjector', config, KEYS);
    const c: CodebookProjectorConfig = { ...DEFAULT_CODEBOOK_PROJECTOR_CONFIG, ...config };
    checkPositiveInt('CodebookProjector', 'inputDim', c.inputDim);
    checkPositiveInt('CodebookProjector', 'outputDim', c.outputDim);
    checkPositiveInt('CodebookProjector', 'depth', c.depth);
    if (c.hiddenDim !== undefined) checkPositiveInt('CodebookProjector', 'hiddenDim', c.hiddenDim);
    if (c.activation !== 'gelu' && c.activation !== 'gelu-tanh') {
      throw new Error(`CodebookProjector: activation must be 'gelu' or 'gelu-tanh', got ${JSON.stringify(c.activation)}`);
    }
    this.config = Object.freeze(c);
    const hidden = c.hiddenDim ?? c.outputDim;
    const widths = [c.inputDim, ...Array<number>(c.depth - 1).fill(hidden), c.outputDim];
    const slots = this.addModule('layers', new SequentialSlots());
    const linears: Linear[] = [];
    for (let i = 0; i < c.depth; i++) {
      const seed = c.seed === undefined ? undefined : c.seed + 2 * i;
      const layer = new Linear(widths[i], widths[i + 1], { bias: c.bias, seed });
      slots.put(2 * i, layer);
      linears.push(layer);
    }
    this.linears = linears;
  }

  /** Rebuilds a projector saved with `savePretrained` (config.json + model.safetensors). */
  static async fromPretrained(dir: string): Promise<CodebookProjector> {
    const { kind, config } = await readAdapterConfig(dir);
    expectKind(dir, kind, 'projector', 'CodebookProjector');
    return loadAdapterWeights(dir, new CodebookProjector(config as unknown as CodebookProjectorConfig));
  }

  /** Writes `dir/config.json` and `dir/model.safetensors` (see `loadVisualAdapter`). */
  async savePretrained(dir: string): Promise<void> {
    const { seed: _seed, ...config } = this.config;
    await saveAdapterCheckpoint(dir, 'projector', config, this);
  }

  get inputDim(): number {
    return this.config.inputDim;
  }

  get outputDim(): number {
    return this.config.outputDim;
  }

  /** `quantized` `[B, N, D]` → `[B, N, C]`. `indices` are accepted for the interface and ignored. */
  apply(input: { quantized: tf.Tensor3D; indices?: tf.Tensor2D }): tf.Tensor3D {
    const { quantized } = input;
    if (!quantized || quantized.rank !== 3) {
      throw new AdapterInputError(
        `CodebookProjector.apply: quantized must be [B, N, D=${this.inputDim}], got ${quantized ? `rank ${quantized.rank} [${quantized.shape}]` : String(quantized)}. ` +
          'Flatten a [B, h, w, D] grid with tf.reshape(q, [B, h*w, D]) in raster order first.',
      );
    }
    const [b, n, d] = quantized.shape;
    if (d !== this.inputDim) {
      throw new AdapterInputError(
        `CodebookProjector.apply: quantized has code dim ${d} ([${quantized.shape}]) but the projector expects D=${this.inputDim}. ` +
          "Build the projector with inputDim equal to the tokenizer's codeDim.",
      );
    }
    if (quantized.dtype !== 'float32') {
      throw new AdapterInputError(`CodebookProjector.apply: quantized must be float32, got ${quantized.dtype}`);
    }
    return tf.tidy(() => {
      let h: tf.Tensor2D = tf.reshape(quantized, [b * n, d]); // [B*N, D]
      this.linears.forEach((layer, i) => {
        if (i > 0) h = gelu(h, this.config.activation);
        h = layer.forward(h); // [B*N, H or C]
      });
      return tf.reshape(h, [b, n, this.outputDim]); // [B, N, C]
    });
  }
}
