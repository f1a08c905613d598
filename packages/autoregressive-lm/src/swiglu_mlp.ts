import { Module, swiGlu } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import { Linear } from './linear';

/** LLaMA/Qwen2 MLP: `down(silu(gate(x)) · up(x))` (SwiGLU, Shazeer 2020). */
export class SwiGLUMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;

  constructor(hiddenSize: number, intermediateSize: number, options: { bias: boolean; std: number; seed?: number }) {
    super();
    const { bias, std, seed: s } = options;
    this.gate_proj = this.addModule('gate_proj', new Linear({ inFeatures: hiddenSize, outFeatures: intermediateSize, bias, std, seed: s }));
    this.up_proj = this.addModule(
      'up_proj',
      new Linear({ inFeatures: hiddenSize, outFeatures: intermediateSize, bias, std, seed: s === undefined ? s : s + 1 }),
    );
    this.down_proj = this.addModule(
      'down_proj',
      new Linear({ inFeatures: intermediateSize, outFeatures: hiddenSize, bias, std, seed: s === undefined ? s : s + 2 }),
    );
  }

  /** `[N, C]` → `[N, C]`. */
  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      // @ettjs/core's swiGlu: a fused kernel where the backend has one.
      return this.down_proj.apply(swiGlu(this.gate_proj.apply(x), this.up_proj.apply(x)));
    });
  }
}
