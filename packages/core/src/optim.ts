import * as tf from '@tensorflow/tfjs-core';
import { StateDictError, type StateDictMismatch } from './module';

/** Hyperparameters of one AdamW parameter group. */
export interface AdamWOptions {
  /** Learning rate. Defaults to 1e-3 (PyTorch). */
  lr: number;
  /** Decay rates of the first and second moment averages. Defaults to [0.9, 0.999] (PyTorch); IBQ uses [0.5, 0.9]. */
  betas: [number, number];
  /** Added to the bias-corrected `sqrt(v)` (outside the square root, as PyTorch). Defaults to 1e-8. */
  eps: number;
  /**
   * Decoupled weight decay (Loshchilov & Hutter): `p ← p·(1 − lr·weightDecay)` before the Adam
   * step. Defaults to 1e-2 (PyTorch's AdamW). 0 gives plain Adam.
   */
  weightDecay: number;
}

/** PyTorch's `torch.optim.AdamW` defaults. */
export const DEFAULT_ADAMW_OPTIONS: AdamWOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 };

/** Named parameters, as `Module.namedTrainableVariables()` returns them. */
export type NamedVariables = [string, tf.Variable][];

/** A parameter group: its parameters and any hyperparameter that differs from the defaults. */
export interface ParamGroup extends Partial<AdamWOptions> {
  /** Parameters by dotted name. Names must be unique across all groups. */
  params: NamedVariables;
  /** Optional label to address the group in `setLearningRate` (e.g. `'tokenizer'`). */
  name?: string;
}

/** A group as the optimizer holds it. `lr` is the current rate, `initialLr` the one it was built with. */
export interface ParamGroupState extends AdamWOptions {
  name: string;
  initialLr: number;
  paramNames: string[];
}

/** Gradients keyed by parameter name, or by the variable itself (as `tf.variableGrads` callers may hold them). */
export type Gradients = Record<string, tf.Tensor | null | undefined> | Map<tf.Variable, tf.Tensor | null | undefined>;

interface ParamState {
  name: string;
  variable: tf.Variable;
  group: ParamGroupState;
  /** Steps taken by this parameter (PyTorch keeps one per parameter: a parameter without gradient does not step). */
  step: number;
  /** First moment `m` (PyTorch `exp_avg`), created on the first step. */
  expAvg?: tf.Variable;
  /** Second moment `v` (PyTorch `exp_avg_sq`). */
  expAvgSq?: tf.Variable;
}

function checkOptions(o: AdamWOptions, where: string): void {
  const bad = (what: string) => {
    throw new Error(`AdamW: ${where}: ${what}`);
  };
  if (!(Number.isFinite(o.lr) && o.lr >= 0)) bad(`lr must be a finite number >= 0, got ${o.lr}`);
  if (!Array.isArray(o.betas) || o.betas.length !== 2 || !o.betas.every((b) => Number.isFinite(b) && b >= 0 && b < 1)) {
    bad(`betas must be two numbers in [0, 1), got ${JSON.stringify(o.betas)}`);
  }
  if (!(Number.isFinite(o.eps) && o.eps >= 0)) bad(`eps must be a finite number >= 0, got ${o.eps}`);
  if (!(Number.isFinite(o.weightDecay) && o.weightDecay >= 0)) bad(`weightDecay must be a finite number >= 0, got ${o.weightDecay}`);
}

const STATE_KEYS = ['exp_avg', 'exp_avg_sq', 'step'] as const;

/**
 * Name of the fused AdamW kernel that @ettjs/backend registers for wasm and cpu (one kernel per
 * group step instead of ~7 per parameter); `AdamW` uses it when the active backend has it and the
 * same update written with tfjs ops elsewhere (webgpu, tensorflow).
 */
export const ADAMW_KERNEL = 'EttAdamW';

/**
 * AdamW as PyTorch's `torch.optim.AdamW` (amsgrad and maximize off), per parameter with step t:
 *
 * ```
 * p ← p·(1 − lr·λ)                       decoupled weight decay
 * m ← β1·m + (1 − β1)·g
 * v ← β2·v + (1 − β2)·g²
 * p ← p − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + eps)
 * ```
 *
 * Plain Adam is `weightDecay: 0` (Adam's L2-coupled decay is not provided). Parameter groups carry
 * their own lr, betas, eps and weight decay. Gradients are keyed by parameter name; a parameter
 * with no gradient in a step is left alone and does not advance its step count (PyTorch's `None`
 * gradient). Moments live in tf variables updated in place, so a step allocates nothing that
 * outlives it.
 */
export class AdamW {
  readonly #groups: ParamGroupState[] = [];
  readonly #params = new Map<string, ParamState>();
  readonly #byVariable = new Map<tf.Variable, ParamState>();
  #disposed = false;

  /**
   * @param params named parameters (one group) or parameter groups.
   * @param defaults hyperparameters for groups that do not set them; unset ones take
   *   `DEFAULT_ADAMW_OPTIONS`.
   */
  constructor(params: NamedVariables | ParamGroup[], defaults: Partial<AdamWOptions> = {}) {
    const base: AdamWOptions = { ...DEFAULT_ADAMW_OPTIONS, ...defaults };
    checkOptions(base, 'defaults');
    const groups: ParamGroup[] = isNamedVariables(params) ? [{ params }] : params;
    if (!Array.isArray(groups)) throw new Error('AdamW: expected [[name, variable], ...] or [{ params: [[name, variable], ...] }, ...]');
    groups.forEach((g, i) => {
      if (!g || !Array.isArray(g.params)) throw new Error(`AdamW: group ${i} has no params array of [name, variable] pairs`);
      const state: ParamGroupState = {
        lr: g.lr ?? base.lr,
        betas: [...(g.betas ?? base.betas)] as [number, number],
        eps: g.eps ?? base.eps,
        weightDecay: g.weightDecay ?? base.weightDecay,
        name: g.name ?? String(i),
        initialLr: g.lr ?? base.lr,
        paramNames: [],
      };
      checkOptions(state, `group "${state.name}"`);
      if (this.#groups.some((o) => o.name === state.name)) throw new Error(`AdamW: two groups are named "${state.name}"`);
      for (const pair of g.params) {
        const [name, variable] = pair ?? [];
        if (typeof name !== 'string' || !(variable instanceof tf.Variable)) {
          throw new Error(
            `AdamW: group "${state.name}" has an entry that is not a [name, tf.Variable] pair (use module.namedTrainableVariables())`,
          );
        }
        if (this.#params.has(name)) throw new Error(`AdamW: parameter "${name}" appears twice; each parameter belongs to one group`);
        if (this.#byVariable.has(variable))
          throw new Error(`AdamW: parameter "${name}" is the same variable as "${this.#byVariable.get(variable)!.name}"`);
        if (variable.dtype !== 'float32')
          throw new Error(`AdamW: parameter "${name}" is ${variable.dtype}; only float32 parameters can be optimized`);
        const p: ParamState = { name, variable, group: state, step: 0 };
        this.#params.set(name, p);
        this.#byVariable.set(variable, p);
        state.paramNames.push(name);
      }
      this.#groups.push(state);
    });
  }

  /** The parameter groups (read-only view; use `setLearningRate` to change a rate). */
  get paramGroups(): readonly Readonly<ParamGroupState>[] {
    return this.#groups;
  }

  /** Names of every optimized parameter. */
  get paramNames(): string[] {
    return [...this.#params.keys()];
  }

  /** Sets the learning rate of every group, or of one group by index or name. */
  setLearningRate(lr: number, group?: number | string): void {
    if (!(Number.isFinite(lr) && lr >= 0)) throw new Error(`AdamW.setLearningRate: lr must be a finite number >= 0, got ${lr}`);
    for (const g of group === undefined ? this.#groups : [this.#group(group)]) g.lr = lr;
  }

  /** Sets every group's rate to `factor × initialLr`: one schedule for groups with different base rates. */
  scaleLearningRate(factor: number): void {
    if (!(Number.isFinite(factor) && factor >= 0))
      throw new Error(`AdamW.scaleLearningRate: factor must be a finite number >= 0, got ${factor}`);
    for (const g of this.#groups) g.lr = g.initialLr * factor;
  }

  /** Current learning rate of a group (the first by default). */
  getLearningRate(group: number | string = 0): number {
    return this.#group(group).lr;
  }

  #group(group: number | string): ParamGroupState {
    const g = typeof group === 'number' ? this.#groups[group] : this.#groups.find((x) => x.name === group);
    if (!g) throw new Error(`AdamW: no parameter group ${JSON.stringify(group)} (groups: ${this.#groups.map((x) => x.name).join(', ')})`);
    return g;
  }

  /**
   * One update. Every gradient is checked (known parameter, same shape, float) before anything is
   * updated; a `null`/`undefined` gradient is skipped like a missing one. The gradients are not
   * disposed.
   */
  step(grads: Gradients): void {
    this.#checkAlive();
    const work: [ParamState, tf.Tensor][] = [];
    const entries: [string | tf.Variable, tf.Tensor | null | undefined][] = grads instanceof Map ? [...grads] : Object.entries(grads);
    for (const [key, g] of entries) {
      // null/undefined is "no gradient" (tf.variableGrads gives null for non-trainable variables).
      if (g == null) continue;
      const p = typeof key === 'string' ? this.#params.get(key) : this.#byVariable.get(key);
      const label = typeof key === 'string' ? `"${key}"` : `variable "${key.name}"`;
      if (!p) {
        throw new Error(
          `AdamW.step: gradient for ${label}, which this optimizer does not hold. Key gradients by the names passed to the constructor.`,
        );
      }
      if (!(g instanceof tf.Tensor) || g.isDisposed) throw new Error(`AdamW.step: gradient for "${p.name}" is not a live tensor`);
      if (!tf.util.arraysEqual(g.shape, p.variable.shape)) {
        throw new Error(`AdamW.step: gradient for "${p.name}" has shape [${g.shape}], the parameter has [${p.variable.shape}]`);
      }
      if (g.dtype !== 'float32') throw new Error(`AdamW.step: gradient for "${p.name}" is ${g.dtype}, expected float32`);
      work.push([p, g]);
    }
    // Parameters of one group at the same step count share every scalar of the update, so they are
    // updated together: concatenated, one set of elementwise ops, split back. The result is
    // bit-identical to updating each alone (the same float32 op per element), with ~12 kernel
    // launches per group instead of ~12 per parameter (tfjs's per-op overhead dominated small models).
    const buckets = new Map<string, [ParamState, tf.Tensor][]>();
    for (const item of work) {
      const [p] = item;
      const key = `${p.group.name}\u0000${p.step}`;
      const bucket = buckets.get(key);
      if (bucket) bucket.push(item);
      else buckets.set(key, [item]);
    }
    for (const bucket of buckets.values()) this.#update(bucket);
  }

  /** One AdamW update of parameters that share a group and a step count. */
  #update(bucket: [ParamState, tf.Tensor][]): void {
    const group = bucket[0]![0].group;
    const { lr, betas, eps, weightDecay } = group;
    const [b1, b2] = betas;
    for (const [p] of bucket) {
      if (!p.expAvg) {
        // tf.variable shares the initial tensor's data but not its handle: tidy frees the handle.
        p.expAvg = tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false));
        p.expAvgSq = tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false));
      }
      p.step += 1;
    }
    const step = bucket[0]![0].step;
    // Bias corrections in float64 on the host, as PyTorch computes them in Python floats.
    const stepSize = lr / (1 - b1 ** step);
    const bc2Sqrt = Math.sqrt(1 - b2 ** step);
    if (tf.getKernel(ADAMW_KERNEL, tf.getBackend()) != null) {
      const inputs: tf.NamedTensorMap = {};
      bucket.forEach(([p, g], i) => {
        Object.assign(inputs, { [`p${i}`]: p.variable, [`g${i}`]: g, [`m${i}`]: p.expAvg!, [`v${i}`]: p.expAvgSq! });
      });
      const attrs = { count: bucket.length, b1, b2, eps, decay: 1 - lr * weightDecay, stepSize, bc2Sqrt };
      const outs = tf.engine().runKernel(ADAMW_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
      bucket.forEach(([p], i) => {
        p.expAvg!.assign(outs[3 * i]!);
        p.expAvgSq!.assign(outs[3 * i + 1]!);
        p.variable.assign(outs[3 * i + 2]!);
      });
      tf.dispose(outs);
      return;
    }
    tf.tidy(() => {
      const joined = (pick: (p: ParamState, g: tf.Tensor) => tf.Tensor): tf.Tensor =>
        bucket.length === 1 ? pick(...bucket[0]!) : tf.concat(bucket.map(([p, g]) => tf.reshape(pick(p, g), [-1])));
      const param = joined((p) => p.variable);
      const g = joined((_, grad) => grad);
      const m = joined((p) => p.expAvg!);
      const v = joined((p) => p.expAvgSq!);
      const decayed = weightDecay !== 0 ? tf.mul(param, 1 - lr * weightDecay) : param;
      const mNew = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
      const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
      const denom = tf.add(tf.div(tf.sqrt(vNew), bc2Sqrt), eps);
      const pNew = tf.sub(decayed, tf.mul(tf.div(mNew, denom), stepSize));
      const parts = (t: tf.Tensor): tf.Tensor[] =>
        bucket.length === 1
          ? [t]
          : tf.split(
              t,
              bucket.map(([p]) => p.variable.size),
            );
      const [ms, vs, ps] = [parts(mNew), parts(vNew), parts(pNew)];
      bucket.forEach(([p], i) => {
        p.expAvg!.assign(tf.reshape(ms[i]!, p.variable.shape));
        p.expAvgSq!.assign(tf.reshape(vs[i]!, p.variable.shape));
        p.variable.assign(tf.reshape(ps[i]!, p.variable.shape));
      });
    });
  }

  /**
   * The optimizer state for a checkpoint: `exp_avg.<name>`, `exp_avg_sq.<name>` (float32, the
   * parameter's shape) and `step.<name>` (int32 scalar) for every parameter that has stepped.
   * The tensors are new: the caller owns them and disposes them after saving. Learning rates are
   * not included: the schedule sets them from the training step.
   */
  stateDict(): Record<string, tf.Tensor> {
    this.#checkAlive();
    const out: Record<string, tf.Tensor> = {};
    for (const p of this.#params.values()) {
      if (!p.expAvg) continue;
      out[`exp_avg.${p.name}`] = tf.clone(p.expAvg);
      out[`exp_avg_sq.${p.name}`] = tf.clone(p.expAvgSq!);
      out[`step.${p.name}`] = tf.scalar(p.step, 'int32');
    }
    return out;
  }

  /**
   * Restores `stateDict()` output. Every key must name a held parameter with all three entries and
   * matching shapes; otherwise a `StateDictError` lists every problem and nothing is changed.
   * Parameters absent from `dict` are reset to "never stepped". The caller keeps ownership of `dict`.
   */
  loadStateDict(dict: Record<string, tf.Tensor>): void {
    this.#checkAlive();
    const mismatches: StateDictMismatch[] = [];
    const seen = new Set<string>();
    for (const [key, t] of Object.entries(dict)) {
      const dot = key.indexOf('.');
      const kind = key.slice(0, dot);
      const name = key.slice(dot + 1);
      const p = this.#params.get(name);
      if (dot < 0 || !(STATE_KEYS as readonly string[]).includes(kind) || !p) {
        mismatches.push({ name: key, problem: 'unexpected', got: `[${t.shape}]` });
        continue;
      }
      seen.add(name);
      const expected = kind === 'step' ? [] : p.variable.shape;
      if (!tf.util.arraysEqual(t.shape, expected))
        mismatches.push({ name: key, problem: 'shape', expected: `[${expected}]`, got: `[${t.shape}]` });
      else if (kind === 'step' && t.dtype !== 'int32' && t.dtype !== 'float32')
        mismatches.push({ name: key, problem: 'dtype', expected: 'int32', got: t.dtype });
    }
    for (const name of seen) {
      for (const kind of STATE_KEYS) {
        const expected = kind === 'step' ? '[]' : `[${this.#params.get(name)!.variable.shape}]`;
        if (!dict[`${kind}.${name}`]) mismatches.push({ name: `${kind}.${name}`, problem: 'missing', expected });
      }
    }
    // Step counts are read before anything changes, so a bad one aborts the whole load.
    const steps = new Map<string, number>();
    if (mismatches.length === 0) {
      for (const name of seen) {
        const s = (dict[`step.${name}`].dataSync() as ArrayLike<number>)[0];
        if (!Number.isInteger(s) || s < 1)
          mismatches.push({ name: `step.${name}`, problem: 'dtype', expected: 'an integer >= 1', got: String(s) });
        steps.set(name, s);
      }
    }
    if (mismatches.length > 0) throw new StateDictError(mismatches, 'AdamW.loadStateDict');
    for (const p of this.#params.values()) {
      p.expAvg?.dispose();
      p.expAvgSq?.dispose();
      p.expAvg = undefined;
      p.expAvgSq = undefined;
      p.step = 0;
      if (!seen.has(p.name)) continue;
      p.expAvg = tf.tidy(() => tf.variable(tf.cast(dict[`exp_avg.${p.name}`], 'float32'), false));
      p.expAvgSq = tf.tidy(() => tf.variable(tf.cast(dict[`exp_avg_sq.${p.name}`], 'float32'), false));
      p.step = steps.get(p.name)!;
    }
  }

  /** Steps taken by a parameter (0 before its first gradient). */
  stepCount(name: string): number {
    const p = this.#params.get(name);
    if (!p) throw new Error(`AdamW.stepCount: no parameter "${name}"`);
    return p.step;
  }

  /** Frees the moment estimates (not the parameters). Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const p of this.#params.values()) {
      p.expAvg?.dispose();
      p.expAvgSq?.dispose();
      p.expAvg = undefined;
      p.expAvgSq = undefined;
    }
  }

  #checkAlive(): void {
    if (this.#disposed) throw new Error('AdamW: used after dispose()');
  }
}

function isNamedVariables(x: NamedVariables | ParamGroup[]): x is NamedVariables {
  return Array.isArray(x) && (x.length === 0 || Array.isArray(x[0]));
}

/** Entries of a gradient collection with a printable key. */
function gradEntries<K>(grads: Record<string, tf.Tensor> | Map<K, tf.Tensor>): [K | string, tf.Tensor][] {
  return grads instanceof Map ? [...grads] : Object.entries(grads);
}

/**
 * The fused kernel's name: inputs an array of float32 tensors (as AddN's), output the float32 scalar
 * Σᵢ Σ gᵢ², differentiable. Registered by @ettjs/backend for wasm and cpu (sums in float64) and webgpu.
 */
export const SUM_SQUARES_KERNEL = 'EttSumSquares';

/**
 * The 2-norm of all gradients taken together, `sqrt(Σ ‖g‖²)`, as a scalar tensor (no host sync).
 * One fused kernel where the active backend has it (@ettjs/backend registers it), else a square and
 * a sum per gradient (2 kernels per parameter).
 */
export function globalNorm(grads: Record<string, tf.Tensor> | Map<unknown, tf.Tensor>): tf.Scalar {
  const list = gradEntries(grads).map(([, g]) => g);
  return tf.tidy(() => {
    if (list.length === 0) return tf.scalar(0);
    if (list.every((g) => g.dtype === 'float32') && tf.getKernel(SUM_SQUARES_KERNEL, tf.getBackend()) != null) {
      // An array of inputs, as tfjs passes AddN's.
      return tf.sqrt(tf.engine().runKernel(SUM_SQUARES_KERNEL, list as unknown as tf.NamedTensorMap, {}) as tf.Tensor) as tf.Scalar;
    }
    return tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))) as tf.Scalar;
  });
}

/**
 * Scales gradients so their global norm is at most `maxNorm`, as PyTorch's `clip_grad_norm_`:
 * `coef = maxNorm / (norm + 1e-6)`, applied only when below 1. Returns new gradient tensors
 * (same keys) and the norm before clipping; the caller owns them and the inputs are not disposed.
 * A non-finite norm propagates into the gradients (PyTorch's default), so a NaN guard downstream
 * sees it.
 */
export function clipByGlobalNorm<G extends Record<string, tf.Tensor> | Map<unknown, tf.Tensor>>(
  grads: G,
  maxNorm: number,
): { grads: G; norm: tf.Scalar } {
  if (!(maxNorm > 0)) throw new Error(`clipByGlobalNorm: maxNorm must be > 0, got ${maxNorm}`);
  const entries = gradEntries(grads);
  const norm = globalNorm(grads);
  const clipped = tf.tidy(() => {
    const coef = tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1);
    return entries.map(([, g]) => tf.mul(g, coef));
  });
  const out =
    grads instanceof Map ? new Map(entries.map(([k], i) => [k, clipped[i]])) : Object.fromEntries(entries.map(([k], i) => [k, clipped[i]]));
  return { grads: out as G, norm };
}
