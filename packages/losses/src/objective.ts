import * as tf from '@tensorflow/tfjs-core';
import { type GanSchedule, DEFAULT_GAN_SCHEDULE, ganFactor, generatorAdversarialLoss } from './adversarial';
import type { PatchDiscriminator } from './discriminator';
import { LossConfigError } from './errors';
import type { PerceptualLoss } from './perceptual';
import { l1Loss, l2Loss } from './reconstruction';
import { type AlphaSchedule, DEFAULT_ALPHA, alphaAt } from './schedule';
import { StructuralLoss, type StructuralLossOptions } from './structural';

/** What a combiner returns: `total = Σ weights[k]·components[k]` over the keys of `weights`. */
export type ObjectiveResult = {
  total: tf.Scalar;
  /** Every term, unweighted, by name (what the metrics log shows). The result owns these tensors. */
  components: Record<string, tf.Scalar>;
  /** The effective weight of each weighted component at this step (after ramps and schedules). */
  weights: Record<string, number>;
};

/** Which perceptual loss a config uses. */
export type PerceptualConfig =
  | ({ kind: 'structural' } & Partial<StructuralLossOptions>) // built-in, weight-free (ours)
  | { kind: 'lpips' } // LPIPS-VGG16 as in the paper; pass the `LpipsLoss` as `input.perceptual`
  | { kind: 'none' };

/** Weights of the fixed L_vq terms. */
export interface VqWeights {
  /** L1 (or L2) reconstruction. Defaults to 1 [IBQ `pixelloss_weight`]. */
  reconstruction: number;
  /** λ_p, perceptual. Defaults to 1 [IBQ `perceptual_weight`]. */
  perceptual: number;
  /** λ_G, generator adversarial. Defaults to 0.1 [P §4.1, IBQ `gen_loss_weight`]. */
  gan: number;
}

/** Configuration of `vqObjective`: L_vq = L_rec + λ_p·L_p + λ_G·L_GAN + Σ_k w_k·L_k over the quantizer's terms [P Eq. 1]. */
export interface VqObjectiveConfig {
  /** Pixel loss. Defaults to `'l1'` [IBQ]. */
  reconstruction: 'l1' | 'l2';
  weights: VqWeights;
  /**
   * Weight of each named quantizer term (`TokenizerOutput.losses`). Defaults to
   * `{ quant: 1, entropy: 0.05 }` [IBQ `quant_loss_weight`, P §4.1 λ_E]. A term the quantizer
   * returns without a weight here is an error; give 0 to log a term without training on it.
   */
  quantizerWeights: Record<string, number>;
  /** When the GAN term switches on. Defaults to `{ start: 0, rampSteps: 0 }` [P Table 1]. */
  gan: GanSchedule;
  /**
   * The perceptual loss. Defaults to `{ kind: 'structural' }`: the paper uses LPIPS, whose VGG
   * weights cannot be downloaded here; `'lpips'` needs an `LpipsLoss` in `input.perceptual`.
   */
  perceptual: PerceptualConfig;
}

export const DEFAULT_VQ_OBJECTIVE_CONFIG: Readonly<VqObjectiveConfig> = Object.freeze<VqObjectiveConfig>({
  reconstruction: 'l1',
  weights: { reconstruction: 1, perceptual: 1, gan: 0.1 },
  quantizerWeights: { quant: 1, entropy: 0.05 },
  gan: { ...DEFAULT_GAN_SCHEDULE },
  perceptual: { kind: 'structural' },
});

/** A partial `VqObjectiveConfig`; nested records merge with the defaults. */
export interface VqObjectiveConfigInput {
  reconstruction?: 'l1' | 'l2';
  weights?: Partial<VqWeights>;
  quantizerWeights?: Record<string, number>;
  gan?: Partial<GanSchedule>;
  perceptual?: PerceptualConfig;
}

function checkWeight(op: string, name: string, w: unknown): void {
  if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
    throw new LossConfigError(`${op}: weight "${name}" must be a finite number ≥ 0, got ${String(w)}`);
  }
}

function checkKeys(op: string, what: string, given: object, valid: readonly string[]): void {
  for (const k of Object.keys(given)) {
    if (!valid.includes(k)) throw new LossConfigError(`${op}: unknown ${what} "${k}"; valid keys: ${valid.join(', ')}`);
  }
}

/** Merges a partial config with the defaults and validates it (unknown keys, negative weights). */
export function resolveVqObjectiveConfig(config: VqObjectiveConfigInput = {}): VqObjectiveConfig {
  const op = 'vqObjective';
  const d = DEFAULT_VQ_OBJECTIVE_CONFIG;
  checkKeys(op, 'config key', config, ['reconstruction', 'weights', 'quantizerWeights', 'gan', 'perceptual']);
  checkKeys(op, 'weight', config.weights ?? {}, Object.keys(d.weights));
  checkKeys(op, 'gan schedule key', config.gan ?? {}, Object.keys(d.gan));
  const c: VqObjectiveConfig = {
    reconstruction: config.reconstruction ?? d.reconstruction,
    weights: { ...d.weights, ...config.weights },
    quantizerWeights: { ...d.quantizerWeights, ...config.quantizerWeights },
    gan: { ...d.gan, ...config.gan },
    perceptual: config.perceptual ?? d.perceptual,
  };
  if (c.reconstruction !== 'l1' && c.reconstruction !== 'l2') {
    throw new LossConfigError(`${op}: reconstruction must be 'l1' or 'l2', got '${c.reconstruction}'`);
  }
  for (const [k, w] of Object.entries(c.weights)) checkWeight(op, k, w);
  for (const [k, w] of Object.entries(c.quantizerWeights)) {
    checkWeight(op, k, w);
    if (k in c.weights) throw new LossConfigError(`${op}: quantizer term "${k}" clashes with a fixed term; rename it in the quantizer`);
  }
  if (!['structural', 'lpips', 'none'].includes(c.perceptual.kind)) {
    throw new LossConfigError(`${op}: unknown perceptual kind '${c.perceptual.kind}'; valid kinds: structural, lpips, none`);
  }
  ganFactor(0, c.gan); // validates the schedule
  return c;
}

/** Inputs of `vqObjective`. */
export interface VqObjectiveInput {
  /** Real images `[B, H, W, C]` in [-1, 1]. */
  inputs: tf.Tensor4D;
  /** Decoder output, same shape. */
  reconstructions: tf.Tensor4D;
  /** The quantizer's named terms (`TokenizerOutput.losses`), weighted by `quantizerWeights`. */
  quantizerLosses: Record<string, tf.Scalar>;
  /**
   * Weights the quantizer proposes for its terms (`QuantizerResult.lossWeights` of
   * @ettjs/vector-quantizer). Per term: an explicit `config.quantizerWeights` entry wins, then this,
   * then the defaults.
   */
  quantizerLossWeights?: Record<string, number>;
  /** The discriminator; needed whenever the GAN term is active. */
  discriminator?: PatchDiscriminator;
  /** The perceptual loss to use (needed for `kind: 'lpips'`); its `kind` must match the config's. */
  perceptual?: PerceptualLoss;
}

/** Per-step options of `vqObjective`. */
export interface VqObjectiveStep {
  /** Training step, for the GAN start/ramp. Defaults to 0. */
  step?: number;
  /** Overrides λ_G this step (e.g. the value of `adaptiveGanWeight`); still multiplied by the GAN ramp. */
  ganWeight?: number;
}

/**
 * L_vq [P Eq. 1; IBQ vqperceptual.py, generator step]. Components: `reconstruction`, `perceptual`
 * (when its weight is > 0 and kind is not `'none'`), `gan` (when its effective weight is > 0) and
 * every quantizer term by its own name. Differentiable; runs inside the taped function. The
 * perceptual kind in use is in `perceptual`.
 */
export function vqObjective(
  input: VqObjectiveInput,
  config: VqObjectiveConfigInput = {},
  options: VqObjectiveStep = {},
): ObjectiveResult & { perceptual: string } {
  const op = 'vqObjective';
  const c = resolveVqObjectiveConfig(config);
  const step = options.step ?? 0;
  if (options.ganWeight !== undefined) checkWeight(op, 'gan (override)', options.ganWeight);
  const explicit = config.quantizerWeights ?? {};
  const proposed = input.quantizerLossWeights ?? {};
  for (const [k, w] of Object.entries(proposed)) checkWeight(op, `${k} (quantizerLossWeights)`, w);
  const quantizerWeight = (name: string): number | undefined =>
    name in explicit ? explicit[name] : name in proposed ? proposed[name] : c.quantizerWeights[name];
  for (const name of Object.keys(input.quantizerLosses)) {
    if (name in c.weights)
      throw new LossConfigError(`${op}: quantizer term "${name}" clashes with a fixed term; rename it in the quantizer`);
    if (quantizerWeight(name) === undefined) {
      throw new LossConfigError(
        `${op}: the quantizer returned a term "${name}" that has no weight; known quantizer terms: ` +
          `${[...new Set([...Object.keys(c.quantizerWeights), ...Object.keys(proposed)])].join(', ')}. Add it to quantizerWeights (0 logs it without training on it).`,
      );
    }
  }
  const ganWeight = (options.ganWeight ?? c.weights.gan) * ganFactor(step, c.gan);
  if (ganWeight > 0 && !input.discriminator) {
    throw new LossConfigError(`${op}: the GAN term is active at step ${step} (weight ${ganWeight}) but no discriminator was given`);
  }
  let perceptual: PerceptualLoss | undefined;
  const usePerceptual = c.weights.perceptual > 0 && c.perceptual.kind !== 'none';
  if (usePerceptual) {
    if (input.perceptual) {
      if (input.perceptual.kind !== c.perceptual.kind) {
        throw new LossConfigError(
          `${op}: the config says perceptual '${c.perceptual.kind}' but a '${input.perceptual.kind}' loss was given`,
        );
      }
      perceptual = input.perceptual;
    } else if (c.perceptual.kind === 'structural') {
      const { kind: _kind, ...opts } = c.perceptual;
      perceptual = new StructuralLoss(opts);
    } else {
      throw new LossConfigError(`${op}: perceptual kind 'lpips' needs an LpipsLoss (with local VGG16 weights) as input.perceptual`);
    }
  }
  return tf.tidy(() => {
    const components: Record<string, tf.Scalar> = {};
    const weights: Record<string, number> = {};
    const rec = c.reconstruction === 'l1' ? l1Loss : l2Loss;
    components.reconstruction = rec(input.inputs, input.reconstructions);
    weights.reconstruction = c.weights.reconstruction;
    if (perceptual) {
      components.perceptual = perceptual.compute(input.inputs, input.reconstructions);
      weights.perceptual = c.weights.perceptual;
    }
    if (ganWeight > 0 && input.discriminator) {
      components.gan = generatorAdversarialLoss(input.discriminator, input.reconstructions);
      weights.gan = ganWeight;
    }
    for (const [name, t] of Object.entries(input.quantizerLosses)) {
      if (t.rank !== 0) throw new Error(`${op}: quantizer term "${name}" must be a scalar, got shape [${t.shape}]`);
      components[name] = tf.clone(t);
      weights[name] = quantizerWeight(name) as number;
    }
    return { total: weightedSum(components, weights), components, weights, perceptual: perceptual?.kind ?? 'none' };
  });
}

function weightedSum(components: Record<string, tf.Scalar>, weights: Record<string, number>): tf.Scalar {
  return tf.addN(Object.entries(weights).map(([k, w]) => tf.mul(components[k], w))) as tf.Scalar;
}

/** Configuration of `ettObjective`. */
export interface EttObjectiveConfig {
  /** α of `L_cap + α·L_vq`. Defaults to `{ kind: 'constant', value: 0.25 }` [P §4.4]. */
  alpha: AlphaSchedule;
}

export const DEFAULT_ETT_OBJECTIVE_CONFIG: Readonly<EttObjectiveConfig> = Object.freeze({ alpha: DEFAULT_ALPHA });

/**
 * ETT's stage-2 loss [P Eq. 3]: `L = L_cap + α·L_vq`. `vq` may be a `vqObjective` result, whose
 * components are logged as `vq.<name>` (not weighted again). Components: `caption`, `vq`, `vq.*`;
 * weights: `caption` 1, `vq` α at `step`. α = 0 is caption-only tuning (the Table 5 ablation).
 */
export function ettObjective(
  terms: { caption: tf.Scalar; vq: tf.Scalar | ObjectiveResult },
  config: Partial<EttObjectiveConfig> = {},
  options: { step?: number } = {},
): ObjectiveResult {
  checkKeys('ettObjective', 'config key', config, ['alpha']);
  const alpha = alphaAt(config.alpha ?? DEFAULT_ETT_OBJECTIVE_CONFIG.alpha, options.step ?? 0);
  const vqTotal = terms.vq instanceof tf.Tensor ? terms.vq : terms.vq.total;
  if (terms.caption.rank !== 0 || vqTotal.rank !== 0) {
    throw new Error(`ettObjective: caption and vq must be scalars, got shapes [${terms.caption.shape}] and [${vqTotal.shape}]`);
  }
  return tf.tidy(() => {
    const components: Record<string, tf.Scalar> = { caption: tf.clone(terms.caption), vq: tf.clone(vqTotal) };
    const weights = { caption: 1, vq: alpha };
    if (!(terms.vq instanceof tf.Tensor)) {
      for (const [k, t] of Object.entries(terms.vq.components)) components[`vq.${k}`] = tf.clone(t);
    }
    return { total: weightedSum(components, weights), components, weights };
  });
}

/** Disposes every tensor of a combiner result (for use after logging). */
export function disposeObjective(result: { total: tf.Scalar; components: Record<string, tf.Scalar> }): void {
  result.total.dispose();
  for (const t of Object.values(result.components)) t.dispose();
}
