import { parseCaption, type SyntheticFields } from '@ettjs/data';
import { psnr } from '@ettjs/losses';
import * as tf from '@tensorflow/tfjs-core';
import type { ETTModel } from './ett-model';
import { disposeTokens } from './ett-model';

/** Per-field caption accuracy on the synthetic set, plus reconstruction and codebook figures. */
export interface EvalReport {
  samples: number;
  /** Fraction of samples whose generated caption names the right shape / colour / position. */
  shape: number;
  colour: number;
  position: number;
  /** Text field: exact-match rate and per-character accuracy (TextVQA-like). */
  textExact: number;
  textChar: number;
  /** Mean reconstruction PSNR (dB, images in [-1, 1]). */
  psnr: number;
  /** Fraction of the codebook selected on the evaluation images. */
  usage: number;
  /** Times each code was selected. */
  codeCounts: number[];
  /** A few (reference, generated) caption pairs to look at. */
  examples: { reference: string; generated: string }[];
}

/** An evaluation sample: image `[H*W*3]` in [-1, 1], caption and fields. */
export interface EvalSample {
  image: Float32Array;
  caption: string;
  fields: SyntheticFields;
}

function charAccuracy(ref: string, got: string | null): number {
  if (!got) return 0;
  let hit = 0;
  for (let i = 0; i < ref.length; i++) if (got[i] === ref[i]) hit++;
  return hit / Math.max(ref.length, got.length);
}

/**
 * Captions every sample greedily and scores each field separately, so a tokenizer that loses
 * small text shows up in `textExact` / `textChar` while shape and colour stay high.
 */
export async function evaluateModel(
  model: ETTModel,
  samples: readonly EvalSample[],
  options: {
    /** Images captioned at once. Defaults to 32. */
    batchSize?: number;
    /** Caption budget in tokens. Defaults to 40 (the synthetic captions are at most ~36 bytes). */
    maxNewTokens?: number;
  } = {},
): Promise<EvalReport> {
  if (samples.length === 0) throw new Error('evaluateModel: no samples to evaluate');
  const bs = options.batchSize ?? 32;
  const S = model.imageSize;
  const counts = new Array(model.tokenizer.codebookSize).fill(0);
  const score = { shape: 0, colour: 0, position: 0, textExact: 0, textChar: 0, psnr: 0 };
  const examples: EvalReport['examples'] = [];
  const tok = model.tokenizer as unknown as { eval?: () => unknown; train?: () => unknown };
  tok.eval?.();
  try {
    for (let i = 0; i < samples.length; i += bs) {
      const chunk = samples.slice(i, i + bs);
      const images = tf.tensor4d(concat(chunk.map((s) => s.image)), [chunk.length, S, S, 3]);
      try {
        const captions = await model.caption(images, { maxNewTokens: options.maxNewTokens ?? 40 });
        const [idx, p] = tf.tidy(() => {
          const t = model.tokenizer.encode(images);
          const rec = model.tokenizer.decode(t.quantized);
          const out: [tf.Tensor, tf.Tensor] = [tf.clone(t.indices), tf.sum(psnr(images, rec, { reduction: 'none' }))];
          disposeTokens(t);
          return out;
        });
        for (const c of await idx.data()) counts[c]++;
        score.psnr += (await p.data())[0];
        tf.dispose([idx, p]);
        chunk.forEach((s, j) => {
          const got = parseCaption(captions[j]);
          score.shape += got.shape === s.fields.shape ? 1 : 0;
          score.colour += got.colour === s.fields.colour ? 1 : 0;
          score.position += got.position === s.fields.position ? 1 : 0;
          score.textExact += got.text === s.fields.text ? 1 : 0;
          score.textChar += charAccuracy(s.fields.text, got.text);
          if (examples.length < 8) examples.push({ reference: s.caption, generated: captions[j] });
        });
      } finally {
        images.dispose();
      }
    }
  } finally {
    tok.train?.();
  }
  const n = samples.length;
  return {
    samples: n,
    shape: score.shape / n,
    colour: score.colour / n,
    position: score.position / n,
    textExact: score.textExact / n,
    textChar: score.textChar / n,
    psnr: score.psnr / n,
    usage: counts.filter((c) => c > 0).length / counts.length,
    codeCounts: counts,
    examples,
  };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
