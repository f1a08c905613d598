import type { Module, NamedVariables, ParamGroup } from '@ettjs/core';
import type * as tf from '@tensorflow/tfjs-core';
import type { ModuleRef, Stage } from './stage';
import { TrainerConfigError } from './trainer-config-error';

/** Dotted path of a module inside `model` (`''` for the model itself). */
export function modulePath(model: Module, ref: ModuleRef, where: string): string {
  if (typeof ref === 'string') {
    if (ref === '*') return '';
    try {
      model.getModule(ref);
    } catch (e) {
      throw new TrainerConfigError(`${where}: ${(e as Error).message}`);
    }
    return ref;
  }
  if (ref === model) return '';
  const stack: [string, Module][] = model.namedChildren().map(([n, m]) => [n, m]);
  while (stack.length > 0) {
    const [path, m] = stack.pop() as [string, Module];
    if (m === ref) return path;
    for (const [n, c] of m.namedChildren()) stack.push([`${path}.${n}`, c]);
  }
  throw new TrainerConfigError(
    `${where}: a ${ref.constructor.name} instance is not part of the model; register it with addModule so it is trained through the model and saved with it`,
  );
}

function under(path: string, name: string): boolean {
  return path === '' || name === path || name.startsWith(`${path}.`);
}

/**
 * "No decay on norms and biases": a parameter of rank ≤ 1 (biases, RMSNorm/LayerNorm gains,
 * scalars) gets no weight decay, matrices and conv kernels do — the rule HF's Trainer applies by
 * name (`bias`, `LayerNorm.weight`), decided here by rank so it holds for any naming.
 */
export function decays(_name: string, variable: tf.Variable): boolean {
  return variable.rank > 1;
}

/** What a stage optimizes, resolved against the model. */
export interface StageSelection {
  /** Generator-side parameters, in model order. */
  generator: NamedVariables;
  /** Discriminator parameters (empty without a discriminator). */
  discriminator: NamedVariables;
  /** Paths that are unfrozen, then frozen again, in order, to make the module flags match. */
  trainablePaths: string[];
  frozenPaths: string[];
  discriminatorPath: string | null;
  /** AdamW groups for the generator: `<group>` (decayed) and `<group>.no_decay` for each group. */
  groups: ParamGroup[];
}

/**
 * Resolves a stage's module references to parameters without touching the model, so every stage
 * can be checked before the first step ("a stage that trains nothing" fails up front).
 */
export function selectStageParams<B>(model: Module, stage: Stage<B>, where: string): StageSelection {
  const trainablePaths = stage.trainable.map((r) => modulePath(model, r, `${where} trainable`));
  const frozenPaths = (stage.frozen ?? []).map((r) => modulePath(model, r, `${where} frozen`));
  const discriminatorPath = stage.discriminator ? modulePath(model, stage.discriminator.module, `${where} discriminator`) : null;
  if (discriminatorPath === '')
    throw new TrainerConfigError(`${where}: the discriminator must be a child module of the model, not the model itself`);
  const all = model.namedParameters();
  const discriminator = discriminatorPath === null ? [] : all.filter(([n]) => under(discriminatorPath, n));
  const discNames = new Set(discriminator.map(([n]) => n));
  if (discriminatorPath !== null && discriminator.length === 0) {
    throw new TrainerConfigError(`${where}: the discriminator "${discriminatorPath}" has no parameters`);
  }
  // A trainable path that contains the discriminator is fine: its parameters go to its own optimizer.
  const generator = all.filter(
    ([n]) => trainablePaths.some((p) => under(p, n)) && !frozenPaths.some((p) => under(p, n)) && !discNames.has(n),
  );
  if (generator.length === 0) {
    throw new TrainerConfigError(
      `${where} trains nothing: trainable [${trainablePaths.map((p) => JSON.stringify(p || '*')).join(', ')}] minus frozen [${frozenPaths.join(', ')}]` +
        `${discriminatorPath !== null ? ' minus the discriminator' : ''} leaves no parameter. List the modules to train in "trainable".`,
    );
  }
  const specs = stage.groups ?? [];
  const groupPaths = specs.map((g, i) => g.modules.map((r) => modulePath(model, r, `${where} groups[${i}]`)));
  const buckets = new Map<string, NamedVariables>();
  for (const entry of generator) {
    const gi = groupPaths.findIndex((paths) => paths.some((p) => under(p, entry[0])));
    const name = gi < 0 ? 'default' : specs[gi].name;
    const key = decays(entry[0], entry[1]) ? name : `${name}.no_decay`;
    const list = buckets.get(key) ?? [];
    list.push(entry);
    buckets.set(key, list);
  }
  for (const [i, paths] of groupPaths.entries()) {
    if (!generator.some(([n]) => paths.some((p) => under(p, n)))) {
      throw new TrainerConfigError(`${where} groups[${i}] ("${specs[i].name}") matches no trainable parameter; check its modules`);
    }
  }
  const groups: ParamGroup[] = [];
  for (const [key, params] of buckets) {
    const base = key.replace(/\.no_decay$/, '');
    const spec = specs.find((g) => g.name === base);
    const group: ParamGroup = { name: key, params };
    if (spec?.lr !== undefined) group.lr = spec.lr;
    if (key.endsWith('.no_decay')) group.weightDecay = 0;
    else if (spec?.weightDecay !== undefined) group.weightDecay = spec.weightDecay;
    groups.push(group);
  }
  return { generator, discriminator, trainablePaths, frozenPaths, discriminatorPath, groups };
}

/** Sets the model's freeze flags to the selection: everything frozen but the stage's trainable set. */
export function applyFreezing(model: Module, sel: StageSelection): void {
  model.freeze();
  for (const p of sel.trainablePaths) (p === '' ? model : model.getModule(p)).unfreeze();
  for (const p of sel.frozenPaths) (p === '' ? model : model.getModule(p)).freeze();
  if (sel.discriminatorPath !== null) (sel.discriminatorPath === '' ? model : model.getModule(sel.discriminatorPath)).unfreeze();
}

/** Discriminator groups: decayed matrices and undecayed rank ≤ 1 parameters. */
export function discriminatorGroups(params: NamedVariables): ParamGroup[] {
  const decayed = params.filter(([n, v]) => decays(n, v));
  const plain = params.filter(([n, v]) => !decays(n, v));
  const groups: ParamGroup[] = [];
  if (decayed.length > 0) groups.push({ name: 'discriminator', params: decayed });
  if (plain.length > 0) groups.push({ name: 'discriminator.no_decay', params: plain, weightDecay: 0 });
  return groups;
}
