import type { SamplingOptions } from '@ettjs/autoregressive-lm';
import { parseCaption, type SyntheticFields } from '@ettjs/data';
import { psnr } from '@ettjs/losses';
import { settleHostChecks } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';
import type { ETTModel } from './ett-model';
import { disposeTokens } from './ett-model';
import { type GenerationJudge, JudgeError, type JudgeReading, type JudgeScore, scoreReadings } from './judge';

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
        await settleHostChecks(); // the encode's input check, where reads are asynchronous (WebGPU)
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

/** The judged generation metrics (issue #9): does a generated image show the prompt's shape and colour? */
export interface GenerationEvalReport {
  samples: number;
  /** The judge's scores of the generated images against their prompts. */
  generated: JudgeScore;
  /**
   * The same judge on the tokenizer's reconstructions of the real images behind the prompts, when
   * the prompts were given as samples: generated images come out of the same decoder, so this is
   * what a perfect code predictor would score.
   */
  reconstructed?: JudgeScore;
  /** The judge's own accuracy on held-out real images (from `judge.training`), when known. */
  judgeHeldOut?: JudgeScore;
  /** The first few prompts with what the judge saw. */
  examples: { prompt: string; judged: string; shapeOk: boolean; colourOk: boolean }[];
  /** Generated images `[S*S*3]`, clipped to [-1, 1], in prompt order; only with `keepImages`. */
  images?: Float32Array[];
}

/** Options of `evaluateGeneration`. */
export interface GenerationEvalOptions {
  /** Prompts generated at once (prompts of equal token length are batched together). Defaults to 16. */
  batchSize?: number;
  /**
   * Sampling of the visual codes; batch `k` (in the order above) uses `seed + k`. Defaults to
   * `{ doSample: true, temperature: 1, topK: 50, seed: 0 }` (the generation example's defaults).
   */
  sampling?: SamplingOptions & { seed?: number };
  /** Return the generated images (for a grid in a report). Defaults to false. */
  keepImages?: boolean;
  /** Examples kept in the report. Defaults to 8. */
  examples?: number;
}

/**
 * Generates one image per prompt with `model.generateImages` and lets `judge` say whether each
 * shows the prompt's shape and colour: the toy version of GenEval's object and colour checks. Pass
 * validation samples instead of strings (their captions are the prompts) to also score the
 * tokenizer's reconstructions of the real images, the ceiling for generation through that decoder.
 * Every prompt is checked against the judge's classes before anything is generated.
 */
export async function evaluateGeneration(
  model: ETTModel,
  judge: GenerationJudge,
  prompts: readonly (string | EvalSample)[],
  options: GenerationEvalOptions = {},
): Promise<GenerationEvalReport> {
  if (prompts.length === 0) throw new Error('evaluateGeneration: no prompts');
  const S = model.imageSize;
  if (judge.config.imageSize !== S) {
    throw new JudgeError(
      `evaluateGeneration: the judge reads ${judge.config.imageSize}-px images but the model makes ${S}-px ones; train a judge with trainJudge({ data: { imageSize: ${S} } })`,
    );
  }
  const texts = prompts.map((p) => (typeof p === 'string' ? p : p.caption));
  const want = texts.map((t) => judge.targetFields(t));
  const bs = options.batchSize ?? 16;
  const { seed = 0, ...sampling } = { doSample: true, temperature: 1, topK: 50, ...options.sampling };
  const keep = options.keepImages ?? false;
  const per = S * S * 3;

  // generateImages falls back to one prompt at a time when lengths differ: batch equal lengths.
  const byLength = new Map<number, number[]>();
  texts.forEach((t, i) => {
    const n = model.text.encode(t).length;
    byLength.set(n, [...(byLength.get(n) ?? []), i]);
  });
  const batches = [...byLength.values()].flatMap((ix) =>
    Array.from({ length: Math.ceil(ix.length / bs) }, (_, k) => ix.slice(k * bs, (k + 1) * bs)),
  );
  const readings: JudgeReading[] = new Array(texts.length);
  const images: Float32Array[] = keep ? new Array(texts.length) : [];
  for (const [k, ix] of batches.entries()) {
    const { images: generated } = await model.generateImages(
      ix.map((i) => texts[i]),
      { ...sampling, seed: seed + k },
    );
    const clipped = tf.tidy(() => tf.clipByValue(generated, -1, 1));
    generated.dispose();
    try {
      (await judge.classify(clipped)).forEach((r, j) => {
        readings[ix[j]] = r;
      });
      if (keep) {
        const flat = (await clipped.data()) as Float32Array;
        ix.forEach((i, j) => {
          images[i] = flat.slice(j * per, (j + 1) * per);
        });
      }
    } finally {
      clipped.dispose();
    }
  }

  let reconstructed: JudgeScore | undefined;
  const samples = prompts.filter((p): p is EvalSample => typeof p !== 'string');
  if (samples.length === prompts.length) {
    const recReadings: JudgeReading[] = [];
    const tok = model.tokenizer as unknown as { eval?: () => unknown; train?: () => unknown };
    tok.eval?.();
    try {
      for (let i = 0; i < samples.length; i += bs) {
        const chunk = samples.slice(i, i + bs);
        const rec = tf.tidy(() => {
          const x = tf.tensor4d(concat(chunk.map((s) => s.image)), [chunk.length, S, S, 3]);
          const t = model.tokenizer.encode(x);
          const out = model.tokenizer.decode(t.quantized);
          disposeTokens(t);
          return out;
        });
        try {
          recReadings.push(...(await judge.classify(rec)));
          await settleHostChecks(); // the encode's input check, where reads are asynchronous (WebGPU)
        } finally {
          rec.dispose();
        }
      }
    } finally {
      tok.train?.();
    }
    reconstructed = scoreReadings(recReadings, want);
  }

  const nExamples = options.examples ?? 8;
  return {
    samples: texts.length,
    generated: scoreReadings(readings, want),
    ...(reconstructed ? { reconstructed } : {}),
    ...(judge.training ? { judgeHeldOut: judge.training.heldOut } : {}),
    examples: texts.slice(0, nExamples).map((prompt, i) => ({
      prompt,
      judged: `${readings[i].colour} ${readings[i].shape}`,
      shapeOk: readings[i].shape === want[i].shape,
      colourOk: readings[i].colour === want[i].colour,
    })),
    ...(keep ? { images } : {}),
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
