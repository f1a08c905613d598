/**
 * The ETT sequence layouts (DESIGN.md, "The ETT sequence"), as pure functions over token ids so
 * they can be tested on their own. Embeddings are assembled by the model from these ids.
 *
 * Understanding:  [BOS] <boi> v_1 … v_N <eoi> caption [EOS] pad…
 *   targets[t] is the token the model must predict at position t (next-token, already shifted):
 *   set only where the next token is a caption token or [EOS]; IGNORE elsewhere.
 * Generation:     pad… [BOS] prompt <boi> v_1 … v_N
 *   left-padded so every sample's <boi> sits at the same position; padding is masked out, and with
 *   RoPE only relative positions matter, so left padding equals no padding. codeTargets[t] is the
 *   code index predicted at t (positions <boi>, v_1 … v_{N-1}); IGNORE elsewhere.
 */

/** Label value that the losses skip (PyTorch's ignore_index convention). */
export const IGNORE_INDEX = -100;

/** Token ids of the special tokens the layouts use. */
export interface SpecialIds {
  bos: number;
  eos: number;
  pad: number;
  boi: number;
  eoi: number;
}

/** Thrown when a caption or prompt does not fit the model's context. */
export class SequenceLengthError extends Error {
  constructor(
    readonly sample: number,
    readonly length: number,
    readonly limit: number,
    what: string,
  ) {
    super(
      `sample ${sample}: ${what} needs ${length} positions but the context allows ${limit}. ` +
        'Shorten the text, lower the image resolution (fewer visual tokens), or raise the LM maxPositionEmbeddings.',
    );
    this.name = 'SequenceLengthError';
  }
}

export interface CaptionSequences {
  batch: number;
  /** Positions before the visual tokens: [BOS, <boi>]. */
  prefixLength: number;
  numVisual: number;
  /** Total sequence length T = prefixLength + numVisual + suffixLength. */
  length: number;
  /** `[B * prefixLength]` ids, row-major. */
  prefixIds: Int32Array;
  /** `[B * suffixLength]` ids: <eoi>, caption, [EOS], pad… */
  suffixIds: Int32Array;
  suffixLength: number;
  /** `[B * T]` next-token targets, IGNORE_INDEX where unsupervised. */
  targets: Int32Array;
  /** `[B * T]` 1 for real positions, 0 for padding. */
  attentionMask: Int32Array;
}

/**
 * Lays out a batch of tokenised captions behind `numVisual` visual slots. `maxLength` is the LM
 * context; the suffix is padded to the longest caption in the batch (or `padTo`).
 */
export function buildCaptionSequences(
  captions: readonly (readonly number[])[],
  ids: SpecialIds,
  numVisual: number,
  maxLength: number,
  padTo?: number,
): CaptionSequences {
  if (captions.length === 0) throw new Error('buildCaptionSequences: empty batch');
  const prefix = [ids.bos, ids.boi];
  const B = captions.length;
  const longest = Math.max(...captions.map((c) => c.length));
  const suffixLength = Math.max(padTo ?? 0, longest + 2); // <eoi> caption [EOS]
  const T = prefix.length + numVisual + suffixLength;
  captions.forEach((c, b) => {
    const need = prefix.length + numVisual + c.length + 2;
    if (need > maxLength)
      throw new SequenceLengthError(b, need, maxLength, `an image (${numVisual} visual tokens) and its caption (${c.length} tokens)`);
  });
  if (T > maxLength) throw new SequenceLengthError(0, T, maxLength, `the padded batch`);
  const prefixIds = new Int32Array(B * prefix.length);
  const suffixIds = new Int32Array(B * suffixLength).fill(ids.pad);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  const attentionMask = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    prefixIds.set(prefix, b * prefix.length);
    const suffix = [ids.eoi, ...captions[b], ids.eos];
    suffixIds.set(suffix, b * suffixLength);
    const real = prefix.length + numVisual + suffix.length;
    attentionMask.fill(1, b * T, b * T + real);
    // Position of <eoi> predicts the first caption token; the last caption token predicts [EOS].
    const eoiPos = prefix.length + numVisual;
    for (let j = 1; j < suffix.length; j++) targets[b * T + eoiPos + j - 1] = suffix[j];
  }
  return { batch: B, prefixLength: prefix.length, numVisual, length: T, prefixIds, suffixIds, suffixLength, targets, attentionMask };
}

export interface GenerationSequences {
  batch: number;
  /** `[B * promptLength]` ids: pad… [BOS] prompt <boi>. */
  promptIds: Int32Array;
  promptLength: number;
  numVisual: number;
  /** T = promptLength + numVisual (the last code is predicted at v_{N-1}; v_N is never an input). */
  length: number;
  /** `[B * T]` 1 for real positions, 0 for left padding. */
  attentionMask: Int32Array;
  /** `[B * T]` code index to predict at each position, IGNORE_INDEX elsewhere. */
  codeTargets: Int32Array;
}

/**
 * Lays out text-to-image training sequences: prompts (tokenised) then the image's code indices
 * (`codes[b]` has `numVisual` entries, raster order). Visual inputs are the codes shifted by one:
 * the model sees v_1 … v_{N-1} and predicts v_1 … v_N.
 */
export function buildGenerationSequences(
  prompts: readonly (readonly number[])[],
  codes: readonly (readonly number[])[],
  ids: SpecialIds,
  numVisual: number,
  maxLength: number,
): GenerationSequences {
  if (prompts.length === 0) throw new Error('buildGenerationSequences: empty batch');
  if (codes.length !== prompts.length) throw new Error(`buildGenerationSequences: ${prompts.length} prompts but ${codes.length} code rows`);
  const B = prompts.length;
  const promptLength = Math.max(...prompts.map((p) => p.length)) + 2; // [BOS] prompt <boi>
  const T = promptLength + numVisual - 1;
  prompts.forEach((p, b) => {
    if (p.length + 2 + numVisual > maxLength)
      throw new SequenceLengthError(b, p.length + 2 + numVisual, maxLength, `a prompt (${p.length} tokens) and ${numVisual} visual tokens`);
    if (codes[b].length !== numVisual)
      throw new Error(`buildGenerationSequences: sample ${b} has ${codes[b].length} codes, expected ${numVisual}`);
  });
  const promptIds = new Int32Array(B * promptLength).fill(ids.pad);
  const attentionMask = new Int32Array(B * T);
  const codeTargets = new Int32Array(B * T).fill(IGNORE_INDEX);
  for (let b = 0; b < B; b++) {
    const p = [ids.bos, ...prompts[b], ids.boi];
    const pad = promptLength - p.length;
    promptIds.set(p, b * promptLength + pad);
    attentionMask.fill(1, b * T + pad, (b + 1) * T);
    for (let i = 0; i < numVisual; i++) codeTargets[b * T + promptLength - 1 + i] = codes[b][i];
  }
  return { batch: B, promptIds, promptLength, numVisual, length: T, attentionMask, codeTargets };
}
