// Analytic FLOP counts of the reference tiny-ETT workloads (bench/README.md, "How FLOPs are counted").
//
// Counted: every convolution (2·B·H_out·W_out·C_in·C_out·k², 1×1 included), every dense layer
// (2·rows·in·out), attention's QKᵀ and PV products (2·B·heads·T·S·head_dim each, the full T×S
// matrix as both implementations compute it), the tied LM head, and the quantizer's logits
// z·Eᵀ (2·N·K·D). Not counted: norms, activations, softmax, losses, the optimizer update.
// A training pass is 3× its forward for modules whose weights train (forward, input gradient,
// weight gradient), 2× for a module that only passes gradient through (the discriminator inside
// the generator's GAN term), 1× for forward-only work (the fake images the critic scores).
// bench/reference/ett_bench.py counts the same quantities from the ops it executes; run.mjs
// compares the two counts.

const conv = (b, side, cin, cout, k) => 2 * b * side * side * cin * cout * k * k;

function resBlock(b, side, cin, cout) {
  return conv(b, side, cin, cout, 3) + conv(b, side, cout, cout, 3) + (cin === cout ? 0 : conv(b, side, cin, cout, 1));
}

function checkTokenizer(t) {
  if (t.attnLevels.length > 0 || t.midAttention) {
    throw new Error('bench/flops.mjs: tokenizer attention is not counted (the reference tiny tokenizer has none)');
  }
}

/** Encoder + quant_conv + the quantizer's logits, for `b` images of side `size`. */
export function encodeFlops(t, b, size) {
  checkTokenizer(t);
  let side = size;
  let blockIn = t.ch;
  let f = conv(b, side, t.imageChannels, t.ch, 3);
  t.chMult.forEach((mult, level) => {
    const blockOut = t.ch * mult;
    for (let i = 0; i < t.numResBlocks; i++) {
      f += resBlock(b, side, blockIn, blockOut);
      blockIn = blockOut;
    }
    if (level !== t.chMult.length - 1) {
      side /= 2;
      f += conv(b, side, blockIn, blockIn, 3);
    }
  });
  f += 2 * resBlock(b, side, blockIn, blockIn); // mid
  f += conv(b, side, blockIn, t.zChannels, 3) + conv(b, side, t.zChannels, t.codeDim, 1);
  f += 2 * b * side * side * t.codebookSize * t.codeDim; // logits z·Eᵀ
  return f;
}

/** post_quant_conv + decoder, from a `latentSide`² grid to images. */
export function decodeFlops(t, b, latentSide) {
  checkTokenizer(t);
  let side = latentSide;
  let blockIn = t.ch * t.chMult[t.chMult.length - 1];
  let f = conv(b, side, t.codeDim, t.zChannels, 1) + conv(b, side, t.zChannels, blockIn, 3);
  f += 2 * resBlock(b, side, blockIn, blockIn); // mid
  for (let level = t.chMult.length - 1; level >= 0; level--) {
    const blockOut = t.ch * t.chMult[level];
    for (let i = 0; i < t.numResBlocks + 1; i++) {
      f += resBlock(b, side, blockIn, blockOut);
      blockIn = blockOut;
    }
    if (level !== 0) {
      side *= 2;
      f += conv(b, side, blockIn, blockIn, 3);
    }
  }
  return f + conv(b, side, blockIn, t.imageChannels, 3);
}

/** PatchGAN discriminator forward: 4×4 convs, padding 1. */
export function discFlops(g, b, size) {
  const k4 = (side, cin, cout, stride) => {
    const out = Math.floor((side + 2 - 4) / stride) + 1;
    return { out, f: conv(b, out, cin, cout, 4) };
  };
  let { out: side, f } = k4(size, g.inChannels, g.baseChannels, 2);
  let mult = 1;
  for (let n = 1; n <= g.layers; n++) {
    const prev = mult;
    mult = Math.min(2 ** n, 8);
    const r = k4(side, g.baseChannels * prev, g.baseChannels * mult, n < g.layers ? 2 : 1);
    side = r.out;
    f += r.f;
  }
  return f + k4(side, g.baseChannels * mult, 1, 1).f;
}

/** Projector (Linear D→C, GELU, Linear C→C) on `rows` codes. */
export function projectorFlops(inputDim, outputDim, rows) {
  return 2 * rows * (inputDim * outputDim + outputDim * outputDim);
}

/** LM forward on `t` new positions attending to `s` keys; the tied text head runs on `headRows` rows per sample. */
export function lmFlops(c, b, t, s, headRows) {
  const d = c.hiddenSize;
  const hd = c.headDim ?? d / c.numHeads;
  const perLayer =
    2 * b * t * d * (c.numHeads * hd + 2 * c.numKVHeads * hd) + // q, k, v
    2 * b * t * c.numHeads * hd * d + // o
    3 * 2 * b * t * d * c.intermediateSize + // gate, up, down
    2 * 2 * b * c.numHeads * t * s * hd; // QKᵀ and PV
  return c.numLayers * perLayer + 2 * b * headRows * d * c.vocabSize;
}
