import type { TextTokenizer } from '@ettjs/core';

/** Label value the caption losses skip (PyTorch's `ignore_index` convention). */
export const IGNORE_INDEX = -100;

export interface CaptionEncoderConfig {
  /** Max tokens per caption, specials included (the LM context left for text). Defaults to 64. */
  maxLength: number;
  /** Prepend the tokenizer's `bos`. Defaults to true. */
  addBos: boolean;
  /** Append the tokenizer's `eos` (supervised, so the model learns to stop). Defaults to true. */
  addEos: boolean;
  /** 'max': pad every batch to `maxLength` (fixed shapes); 'longest': to the batch's longest. Defaults to 'max'. */
  padding: 'max' | 'longest';
}

export const DEFAULT_CAPTION_ENCODER_CONFIG: CaptionEncoderConfig = { maxLength: 64, addBos: true, addEos: true, padding: 'max' };

/** A batch of tokenised captions, row-major `[B, T]`. */
export interface EncodedCaptions {
  batch: number;
  /** T. */
  length: number;
  /** Caption token ids without specials or padding, one array per sample. */
  captionIds: number[][];
  /** `[B * T]`: [bos] caption [eos] pad… */
  inputIds: Int32Array;
  /** `[B * T]`: 1 on real tokens, 0 on padding. */
  attentionMask: Int32Array;
  /**
   * `[B * T]`: the token at each position where it is a training target (caption tokens and eos),
   * `IGNORE_INDEX` on bos and padding. Aligned with `inputIds`, not shifted: the loss shifts, as
   * with Hugging Face `labels`.
   */
  labels: Int32Array;
}

/** A caption the encoder refuses: empty, or longer than `maxLength`. */
export class CaptionError extends Error {
  constructor(
    readonly kind: 'empty' | 'too-long',
    message: string,
  ) {
    super(message);
    this.name = 'CaptionError';
  }
}

/** Tokenises captions with any `TextTokenizer` into padded ids, attention masks and labels. */
export class CaptionEncoder {
  readonly config: CaptionEncoderConfig;
  readonly padId: number;
  private readonly bos?: number;
  private readonly eos?: number;

  constructor(
    readonly tokenizer: TextTokenizer,
    config: Partial<CaptionEncoderConfig> = {},
  ) {
    this.config = { ...DEFAULT_CAPTION_ENCODER_CONFIG, ...config };
    const { maxLength, addBos, addEos } = this.config;
    const sp = tokenizer.specialTokens;
    const need = (name: string): number => {
      const id = sp[name];
      if (id === undefined)
        throw new Error(`CaptionEncoder: the tokenizer has no '${name}' special token (it has: ${Object.keys(sp).join(', ') || 'none'})`);
      return id;
    };
    this.padId = need('pad');
    if (addBos) this.bos = need('bos');
    if (addEos) this.eos = need('eos');
    const specials = (addBos ? 1 : 0) + (addEos ? 1 : 0);
    if (!Number.isInteger(maxLength) || maxLength <= specials)
      throw new Error(`CaptionEncoder: maxLength must be an integer above ${specials} (the special tokens), got ${maxLength}`);
  }

  /** Tokens the specials take. */
  get specialCount(): number {
    return (this.bos === undefined ? 0 : 1) + (this.eos === undefined ? 0 : 1);
  }

  /** Caption ids without specials; throws `CaptionError` for an empty or over-long caption. */
  tokenize(caption: string): number[] {
    if (caption.trim() === '') throw new CaptionError('empty', 'empty caption');
    const ids = this.tokenizer.encode(caption);
    const total = ids.length + this.specialCount;
    if (total > this.config.maxLength) {
      throw new CaptionError(
        'too-long',
        `caption needs ${total} tokens (with specials) but maxLength is ${this.config.maxLength}; shorten it or raise maxLength`,
      );
    }
    return ids;
  }

  /** Adds specials and pads already tokenised captions. */
  pad(captionIds: readonly (readonly number[])[]): EncodedCaptions {
    const B = captionIds.length;
    if (B === 0) throw new Error('CaptionEncoder.pad: empty batch');
    const longest = Math.max(...captionIds.map((c) => c.length)) + this.specialCount;
    if (longest > this.config.maxLength)
      throw new CaptionError('too-long', `a caption needs ${longest} tokens but maxLength is ${this.config.maxLength}`);
    const T = this.config.padding === 'max' ? this.config.maxLength : longest;
    const inputIds = new Int32Array(B * T).fill(this.padId);
    const attentionMask = new Int32Array(B * T);
    const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
    captionIds.forEach((ids, b) => {
      let t = b * T;
      if (this.bos !== undefined) {
        attentionMask[t] = 1;
        inputIds[t++] = this.bos;
      }
      for (const id of ids) {
        attentionMask[t] = 1;
        labels[t] = id;
        inputIds[t++] = id;
      }
      if (this.eos !== undefined) {
        attentionMask[t] = 1;
        labels[t] = this.eos;
        inputIds[t++] = this.eos;
      }
    });
    return { batch: B, length: T, captionIds: captionIds.map((c) => [...c]), inputIds, attentionMask, labels };
  }

  /** `tokenize` then `pad`. */
  encode(captions: readonly string[]): EncodedCaptions {
    return this.pad(captions.map((c) => this.tokenize(c)));
  }
}
