/**
 * The LM config: one typed record in camelCase, with the mapping to and from HF `config.json`
 * (`model_type` `llama` or `qwen2`). Defaults for keys a config.json leaves out follow HF's
 * `LlamaConfig` / `Qwen2Config` classes.
 */

/** RoPE frequency scaling, as HF's `rope_scaling` (only the kinds implemented here). */
export type RopeScaling =
  | { kind: 'linear'; factor: number }
  | { kind: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface LMConfig {
  /** Which HF family the weights and config.json follow. Defaults to `'qwen2'` (the paper's Qwen2.5-1.5B). */
  architecture: 'llama' | 'qwen2';
  /** Text vocabulary V. Defaults to 261, the `ByteTokenizer` default (256 bytes + 5 specials). */
  vocabSize: number;
  /** Hidden size C. Defaults to 256 (the paper-reproduction toy LM, d 128–256, PAPER.md). */
  hiddenSize: number;
  /** SwiGLU inner width. Defaults to 704 (≈ 2.75·C, LLaMA's 8/3·C rounded up to a multiple of 64). */
  intermediateSize: number;
  /** Decoder layers. Defaults to 4 (the toy LM, 2–4 layers). */
  numLayers: number;
  /** Query heads. Defaults to 4. */
  numHeads: number;
  /** Key/value heads (grouped-query attention; must divide `numHeads`). Defaults to 2 (GQA as in Qwen2.5). */
  numKVHeads: number;
  /** Per-head width. Defaults to `hiddenSize / numHeads` (HF's `head_dim` when absent). */
  headDim?: number;
  /** Longest sequence (positions) accepted. Defaults to 2048. */
  maxPositionEmbeddings: number;
  /** RMSNorm epsilon. Defaults to 1e-6 (Qwen2.5). */
  rmsNormEps: number;
  /** RoPE base θ. Defaults to 1e6 (Qwen2.5; LLaMA 2 uses 1e4). */
  ropeTheta: number;
  /** RoPE scaling. Defaults to `null` (none). */
  ropeScaling: RopeScaling | null;
  /** Biases on q/k/v projections. Defaults to true (Qwen2 always has them; LLaMA's `attention_bias`). */
  qkvBias: boolean;
  /** Bias on the attention output projection (LLaMA's `attention_bias` also sets it; Qwen2 never). Defaults to false. */
  outputBias: boolean;
  /** Biases on gate/up/down projections (LLaMA's `mlp_bias`). Defaults to false. */
  mlpBias: boolean;
  /** Output head shares the token embedding (HF `tie_word_embeddings`). Defaults to true (Qwen2.5-1.5B). */
  tieWordEmbeddings: boolean;
  /**
   * Size K of the optional visual-code head (hidden → K code logits, for image generation).
   * 0 means no head. Defaults to 0. Saved as `visual_vocab_size` in config.json (HF ignores it).
   */
  visualVocabSize: number;
  /** Std of the normal init of weights (HF `initializer_range`). Defaults to 0.02. */
  initializerRange: number;
  /** Token ids from config.json, kept for generation defaults. Default null. */
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
}

export const DEFAULT_LM_CONFIG: LMConfig = {
  architecture: 'qwen2',
  vocabSize: 261,
  hiddenSize: 256,
  intermediateSize: 704,
  numLayers: 4,
  numHeads: 4,
  numKVHeads: 2,
  maxPositionEmbeddings: 2048,
  rmsNormEps: 1e-6,
  ropeTheta: 1e6,
  ropeScaling: null,
  qkvBias: true,
  outputBias: false,
  mlpBias: false,
  tieWordEmbeddings: true,
  visualVocabSize: 0,
  initializerRange: 0.02,
  bosTokenId: null,
  eosTokenId: null,
};

/** A config that cannot build a model, or a config.json this package cannot read. */
export class LMConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LMConfigError';
  }
}

/** Merges `partial` over the defaults and checks it. */
export function resolveLMConfig(partial: Partial<LMConfig> = {}): Required<LMConfig> {
  const c = { ...DEFAULT_LM_CONFIG, ...partial };
  const headDim = partial.headDim ?? c.hiddenSize / c.numHeads;
  const ints: (keyof LMConfig)[] = [
    'vocabSize',
    'hiddenSize',
    'intermediateSize',
    'numLayers',
    'numHeads',
    'numKVHeads',
    'maxPositionEmbeddings',
  ];
  for (const k of ints) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      throw new LMConfigError(`LMConfig.${k} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isInteger(c.visualVocabSize) || c.visualVocabSize < 0) {
    throw new LMConfigError(`LMConfig.visualVocabSize must be a non-negative integer (0 = no visual head), got ${c.visualVocabSize}`);
  }
  if (!Number.isInteger(headDim) || headDim < 2 || headDim % 2 !== 0) {
    throw new LMConfigError(
      `LMConfig: head dim must be an even integer (RoPE rotates pairs), got ${headDim} (hiddenSize ${c.hiddenSize} / numHeads ${c.numHeads}); set headDim or change numHeads`,
    );
  }
  if (c.numHeads % c.numKVHeads !== 0) {
    throw new LMConfigError(`LMConfig: numKVHeads (${c.numKVHeads}) must divide numHeads (${c.numHeads}) for grouped-query attention`);
  }
  if (c.architecture !== 'llama' && c.architecture !== 'qwen2') {
    throw new LMConfigError(`LMConfig.architecture must be 'llama' or 'qwen2', got ${JSON.stringify(c.architecture)}`);
  }
  if (c.architecture === 'qwen2' && c.outputBias)
    throw new LMConfigError('LMConfig: Qwen2 has no o_proj bias; set outputBias false or use architecture "llama"');
  if (!(c.rmsNormEps > 0) || !(c.ropeTheta > 0) || !(c.initializerRange >= 0)) {
    throw new LMConfigError(
      `LMConfig: rmsNormEps (${c.rmsNormEps}) and ropeTheta (${c.ropeTheta}) must be > 0, initializerRange (${c.initializerRange}) >= 0`,
    );
  }
  return { ...c, headDim };
}

type Json = Record<string, unknown>;

function num(json: Json, key: string, fallback?: number): number {
  const v = json[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new LMConfigError(`config.json: missing required key "${key}" (a number). Add it, as HF's config for this model has it.`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new LMConfigError(`config.json: "${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function bool(json: Json, key: string, fallback: boolean): boolean {
  const v = json[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new LMConfigError(`config.json: "${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function ropeScalingFromHF(raw: unknown): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object') throw new LMConfigError(`config.json: "rope_scaling" must be an object or null, got ${JSON.stringify(raw)}`);
  const r = raw as Json;
  const kind = r.rope_type ?? r.type;
  if (kind === 'default') return null;
  if (kind === 'linear') return { kind: 'linear', factor: num(r, 'factor') };
  if (kind === 'llama3') {
    return {
      kind: 'llama3',
      factor: num(r, 'factor'),
      lowFreqFactor: num(r, 'low_freq_factor'),
      highFreqFactor: num(r, 'high_freq_factor'),
      originalMaxPositionEmbeddings: num(r, 'original_max_position_embeddings'),
    };
  }
  throw new LMConfigError(
    `config.json: rope_scaling type ${JSON.stringify(kind)} is not supported (supported: default, linear, llama3). ` +
      'Use a checkpoint without it or open an issue.',
  );
}

/** Reads an HF `config.json` object (`model_type` llama or qwen2). */
export function lmConfigFromHF(json: unknown): Required<LMConfig> {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new LMConfigError('config.json: expected a JSON object');
  const j = json as Json;
  const type = j.model_type;
  if (type !== 'llama' && type !== 'qwen2') {
    throw new LMConfigError(
      `config.json: model_type ${JSON.stringify(type)} is not supported; this package loads "llama" and "qwen2" decoders (Qwen2.5 uses "qwen2").`,
    );
  }
  if (type === 'qwen2' && j.use_sliding_window === true) {
    throw new LMConfigError('config.json: use_sliding_window true is not supported (Qwen2.5 ships with it false); set it to false');
  }
  const act = j.hidden_act ?? 'silu';
  if (act !== 'silu')
    throw new LMConfigError(`config.json: hidden_act ${JSON.stringify(act)} is not supported (only "silu", the SwiGLU of LLaMA/Qwen2)`);
  const heads = num(j, 'num_attention_heads');
  const eos = j.eos_token_id;
  const attentionBias = bool(j, 'attention_bias', false);
  return resolveLMConfig({
    architecture: type,
    vocabSize: num(j, 'vocab_size'),
    hiddenSize: num(j, 'hidden_size'),
    intermediateSize: num(j, 'intermediate_size'),
    numLayers: num(j, 'num_hidden_layers'),
    numHeads: heads,
    numKVHeads: num(j, 'num_key_value_heads', heads),
    ...(j.head_dim !== undefined && j.head_dim !== null ? { headDim: num(j, 'head_dim') } : {}),
    // HF class defaults: LlamaConfig 2048 / 1e-6 / 1e4, Qwen2Config 32768 / 1e-6 / 1e4.
    maxPositionEmbeddings: num(j, 'max_position_embeddings', type === 'llama' ? 2048 : 32768),
    rmsNormEps: num(j, 'rms_norm_eps', 1e-6),
    ropeTheta: num(j, 'rope_theta', 10000),
    ropeScaling: ropeScalingFromHF(j.rope_scaling),
    qkvBias: type === 'qwen2' ? true : attentionBias,
    outputBias: type === 'qwen2' ? false : attentionBias,
    mlpBias: type === 'llama' ? bool(j, 'mlp_bias', false) : false,
    tieWordEmbeddings: bool(j, 'tie_word_embeddings', false),
    visualVocabSize: num(j, 'visual_vocab_size', 0),
    initializerRange: num(j, 'initializer_range', 0.02),
    bosTokenId: typeof j.bos_token_id === 'number' ? j.bos_token_id : null,
    eosTokenId:
      typeof eos === 'number' || (Array.isArray(eos) && eos.every((e) => typeof e === 'number')) ? (eos as number | number[]) : null,
  });
}

/** Writes the HF `config.json` object for a config (float32 weights). */
export function lmConfigToHF(config: Required<LMConfig>): Json {
  const c = config;
  if (c.architecture === 'qwen2' && !c.qkvBias) {
    throw new LMConfigError('cannot save as qwen2: Qwen2 always has q/k/v biases but this model has none; use architecture "llama"');
  }
  if (c.architecture === 'qwen2' && c.mlpBias)
    throw new LMConfigError('cannot save as qwen2: Qwen2 has no MLP biases; use architecture "llama"');
  if (c.architecture === 'llama' && c.qkvBias !== c.outputBias) {
    throw new LMConfigError(
      "cannot save as llama: HF LLaMA's attention_bias sets q/k/v and o_proj biases together; this model has only some of them",
    );
  }
  const json: Json = {
    architectures: [c.architecture === 'llama' ? 'LlamaForCausalLM' : 'Qwen2ForCausalLM'],
    model_type: c.architecture,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKVHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.maxPositionEmbeddings,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScalingToHF(c.ropeScaling),
    tie_word_embeddings: c.tieWordEmbeddings,
    hidden_act: 'silu',
    initializer_range: c.initializerRange,
    torch_dtype: 'float32',
  };
  if (c.architecture === 'llama') {
    json.attention_bias = c.qkvBias;
    json.mlp_bias = c.mlpBias;
  } else {
    json.use_sliding_window = false;
  }
  if (c.bosTokenId !== null) json.bos_token_id = c.bosTokenId;
  if (c.eosTokenId !== null) json.eos_token_id = c.eosTokenId;
  if (c.visualVocabSize > 0) json.visual_vocab_size = c.visualVocabSize;
  return json;
}

function ropeScalingToHF(r: RopeScaling | null): Json | null {
  if (!r) return null;
  if (r.kind === 'linear') return { rope_type: 'linear', type: 'linear', factor: r.factor };
  return {
    rope_type: 'llama3',
    factor: r.factor,
    low_freq_factor: r.lowFreqFactor,
    high_freq_factor: r.highFreqFactor,
    original_max_position_embeddings: r.originalMaxPositionEmbeddings,
  };
}
