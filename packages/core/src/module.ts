import * as tf from '@tensorflow/tfjs-core';

/** A state-dict entry whose shape or name does not match the module. */
export interface StateDictMismatch {
  name: string;
  problem: 'missing' | 'unexpected' | 'shape' | 'dtype';
  expected?: string;
  got?: string;
}

/** Thrown by `loadStateDict` with every mismatch listed, so one run shows all that is wrong. */
export class StateDictError extends Error {
  constructor(
    readonly mismatches: StateDictMismatch[],
    context = 'loadStateDict',
  ) {
    const lines = mismatches.map((m) => {
      if (m.problem === 'missing') return `  missing tensor "${m.name}" (expected ${m.expected})`;
      if (m.problem === 'unexpected') return `  unexpected tensor "${m.name}" (${m.got}), the module has no such parameter`;
      return `  "${m.name}": ${m.problem} mismatch, expected ${m.expected}, got ${m.got}`;
    });
    super(
      `${context}: ${mismatches.length} mismatch(es) between the checkpoint and the module:\n${lines.join('\n')}\n` +
        'Check that the checkpoint was saved from a model with the same config, or pass { strict: false } to load the matching subset.',
    );
    this.name = 'StateDictError';
  }
}

interface Entry {
  variable: tf.Variable;
  /** Buffers are state that is saved but never trained (EMA statistics, LeCAM averages). */
  buffer: boolean;
  frozen: boolean;
}

/**
 * A light base class for models on tfjs-core (no tf.layers): parameters and child modules are
 * registered by name, so every tensor has a dotted path (`encoder.down.0.conv.weight`) that
 * `stateDict()` and checkpoints use.
 */
export abstract class Module {
  #entries = new Map<string, Entry>();
  #children = new Map<string, Module>();
  #disposed = false;

  /** Registers a trainable parameter; the module takes ownership of `init` (it is not cloned). */
  protected addParameter(name: string, init: tf.Tensor, options: { trainable?: boolean } = {}): tf.Variable {
    this.#checkName(name, init);
    const variable = tf.variable(init, options.trainable ?? true);
    init.dispose();
    this.#entries.set(name, { variable, buffer: false, frozen: options.trainable === false });
    return variable;
  }

  /** Registers non-trainable state that is saved with the module. Takes ownership of `init`. */
  protected addBuffer(name: string, init: tf.Tensor): tf.Variable {
    this.#checkName(name, init);
    const variable = tf.variable(init, false);
    init.dispose();
    this.#entries.set(name, { variable, buffer: true, frozen: true });
    return variable;
  }

  /** Registers a child module under `name`; its parameters appear as `name.<param>`. */
  protected addModule<M extends Module>(name: string, module: M): M {
    this.#checkName(name);
    this.#children.set(name, module);
    return module;
  }

  /** `owned`: a tensor this call took ownership of, freed if the name is rejected. */
  #checkName(name: string, owned?: tf.Tensor): void {
    let problem = '';
    if (!name || name.includes('.')) problem = `Module: invalid name "${name}" (non-empty, no dots)`;
    else if (this.#entries.has(name) || this.#children.has(name))
      problem = `Module: "${name}" is registered twice in ${this.constructor.name}`;
    if (problem) {
      owned?.dispose();
      throw new Error(problem);
    }
  }

  /** Direct children, by name. */
  namedChildren(): [string, Module][] {
    return [...this.#children];
  }

  /** Looks up a child module by dotted path (`encoder.down.0`). */
  getModule(path: string): Module {
    let m: Module = this;
    for (const part of path.split('.')) {
      const next = m.#children.get(part);
      if (!next) {
        throw new Error(
          `Module: no child "${path}" in ${this.constructor.name} (children: ${[...this.#children.keys()].join(', ') || 'none'})`,
        );
      }
      m = next;
    }
    return m;
  }

  #walk(prefix: string, out: [string, Entry][]): void {
    for (const [name, entry] of this.#entries) out.push([prefix + name, entry]);
    for (const [name, child] of this.#children) child.#walk(`${prefix}${name}.`, out);
  }

  #all(): [string, Entry][] {
    const out: [string, Entry][] = [];
    this.#walk('', out);
    return out;
  }

  /** Parameters (not buffers) with dotted names, in registration order. */
  namedParameters(): [string, tf.Variable][] {
    return this.#all()
      .filter(([, e]) => !e.buffer)
      .map(([n, e]) => [n, e.variable]);
  }

  /** Buffers with dotted names. */
  namedBuffers(): [string, tf.Variable][] {
    return this.#all()
      .filter(([, e]) => e.buffer)
      .map(([n, e]) => [n, e.variable]);
  }

  /** Parameters that are not frozen: what an optimizer should update. */
  trainableVariables(): tf.Variable[] {
    return this.namedTrainableVariables().map(([, v]) => v);
  }

  /** Trainable parameters with their dotted names. */
  namedTrainableVariables(): [string, tf.Variable][] {
    return this.#all()
      .filter(([, e]) => !e.buffer && !e.frozen)
      .map(([n, e]) => [n, e.variable]);
  }

  /** Number of scalar parameters (buffers excluded). */
  parameterCount(): number {
    return this.namedParameters().reduce((s, [, v]) => s + v.size, 0);
  }

  /** Freezes every parameter of this subtree (they get no gradient and no optimizer update). */
  freeze(): this {
    this.#setFrozen(true);
    return this;
  }

  /** Unfreezes every parameter of this subtree. */
  unfreeze(): this {
    this.#setFrozen(false);
    return this;
  }

  #setFrozen(frozen: boolean): void {
    for (const [, e] of this.#all()) {
      if (e.buffer) continue;
      e.frozen = frozen;
      e.variable.trainable = !frozen;
    }
  }

  /** True when no parameter of this subtree is trainable. */
  get isFrozen(): boolean {
    return this.namedTrainableVariables().length === 0;
  }

  /**
   * Every parameter and buffer by dotted name. The tensors are the module's own variables, not
   * copies: do not dispose them.
   */
  stateDict(): Record<string, tf.Tensor> {
    return Object.fromEntries(this.#all().map(([n, e]) => [n, e.variable]));
  }

  /**
   * Assigns tensors by dotted name. With `strict` (the default) any missing, unexpected or
   * mis-shaped tensor throws a `StateDictError` listing all of them, and nothing is assigned.
   * Integer tensors are cast to the parameter's dtype. The caller keeps ownership of `dict`.
   */
  loadStateDict(dict: Record<string, tf.Tensor>, options: { strict?: boolean } = {}): { missing: string[]; unexpected: string[] } {
    const strict = options.strict ?? true;
    const own = new Map(this.#all());
    const mismatches: StateDictMismatch[] = [];
    // Own-property lookups only: a parameter named like an Object.prototype member must not match it.
    const get = (name: string): tf.Tensor | undefined => (Object.hasOwn(dict, name) ? dict[name] : undefined);
    for (const [name, e] of own) {
      const t = get(name);
      if (!t) {
        mismatches.push({ name, problem: 'missing', expected: `[${e.variable.shape}]` });
      } else if (!tf.util.arraysEqual(t.shape, e.variable.shape)) {
        mismatches.push({ name, problem: 'shape', expected: `[${e.variable.shape}]`, got: `[${t.shape}]` });
      }
    }
    for (const name of Object.keys(dict)) {
      if (!own.has(name)) mismatches.push({ name, problem: 'unexpected', got: `[${dict[name].shape}]` });
    }
    const shapeErrors = mismatches.filter((m) => m.problem === 'shape');
    if (strict ? mismatches.length > 0 : shapeErrors.length > 0) throw new StateDictError(strict ? mismatches : shapeErrors);
    for (const [name, e] of own) {
      const t = get(name);
      if (!t) continue;
      tf.tidy(() => e.variable.assign(t.dtype === e.variable.dtype ? t : tf.cast(t, e.variable.dtype)));
    }
    return {
      missing: mismatches.filter((m) => m.problem === 'missing').map((m) => m.name),
      unexpected: mismatches.filter((m) => m.problem === 'unexpected').map((m) => m.name),
    };
  }

  /** Frees every parameter and buffer of this subtree. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const { variable } of this.#entries.values()) variable.dispose();
    for (const child of this.#children.values()) child.dispose();
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }
}

/** An indexed list of child modules, named `0`, `1`, ... (as PyTorch's `nn.ModuleList`). */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[] = [];
  constructor(items: Iterable<M> = []) {
    super();
    for (const m of items) this.push(m);
  }
  push(module: M): M {
    this.addModule(String(this.items.length), module);
    this.items.push(module);
    return module;
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    const m = this.items[i];
    if (!m) throw new RangeError(`ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
