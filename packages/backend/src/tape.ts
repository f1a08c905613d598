// A linear-time gradient tape filter for the tfjs engine.
//
// `tf.variableGrads` / `tf.grads` first keep the tape nodes that lie on a path from the xs to y.
// tfjs-core's filter checks every input of every node once per x (its inner loop over the xs does
// not use its index), so an input that does not come from an x costs |xs| lookups: for a stage-2 ETT
// step (3 500 tape nodes, 175 parameters) that was 2.5-3 ms before the first backward kernel, and it
// grows with the product of model depth and parameter count. This module replaces the engine's
// `gradients` with one that filters in one pass each way and otherwise does what tfjs-core 4.x does:
// the same tape, scopes, saved-tensor disposal, higher-order gradients and error messages.
import * as tf from '@tensorflow/tfjs-core';

/** One recorded op on the engine's tape (tfjs-core's TapeNode, which it does not export). */
export interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: ((dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>) | null;
  saved?: tf.Tensor[];
}

/** The parts of tfjs-core's Engine that `gradients` uses (all present in tfjs-core 4.x). */
interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T>(nameOrFn: string | (() => T), fn?: () => T): T;
  gradients: GradientsFn;
}

type GradientsFn = (
  f: () => tf.Tensor,
  xs: tf.Tensor[],
  dy?: tf.Tensor,
  allowNoGradients?: boolean,
) => { value: tf.Tensor; grads: (tf.Tensor | undefined)[] };

/**
 * The nodes of `tape` on a path from one of `xs` to `y`, in tape order, each with only the inputs
 * that come from the xs (a shallow copy; the tape is not changed). What tfjs-core's
 * getFilteredNodesXToY returns, in O(nodes + inputs) instead of O(inputs × xs).
 */
export function filterTape(tape: readonly TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const reachedFromX = new Uint8Array(tape.length);
  tape.forEach((node, i) => {
    for (const name in node.inputs) {
      if (fromX.has(node.inputs[name]!.id)) {
        reachedFromX[i] = 1;
        for (const out of node.outputs) fromX.add(out.id);
        break;
      }
    }
  });
  const leadsToY = new Set<number>([y.id]);
  const reachesY = new Uint8Array(tape.length);
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (!node.outputs.some((out) => leadsToY.has(out.id))) continue;
    for (const name in node.inputs) {
      leadsToY.add(node.inputs[name]!.id);
      reachesY[i] = 1;
    }
  }
  const kept: TapeNode[] = [];
  tape.forEach((node, i) => {
    if (reachedFromX[i] !== 1 || reachesY[i] !== 1) return;
    const inputs: Record<string, tf.Tensor> = {};
    for (const name in node.inputs) if (fromX.has(node.inputs[name]!.id)) inputs[name] = node.inputs[name]!;
    kept.push({ ...node, inputs, outputs: node.outputs });
  });
  return kept;
}

/** Runs the filtered tape backwards, accumulating each tensor's gradient by id (tfjs-core's backpropagateGradients). */
function backpropagate(grads: Record<number, tf.Tensor>, tape: readonly TapeNode[], tidy: (f: () => tf.Tensor) => tf.Tensor): void {
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    const dys = node.outputs.map((out) => grads[out.id] ?? null);
    if (node.gradient == null) {
      throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    }
    const inputGrads = node.gradient(dys);
    for (const name in node.inputs) {
      if (!(name in inputGrads)) {
        throw new Error(`Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGrads)}.`);
      }
      const dx = tidy(() => inputGrads[name]!());
      if (dx.dtype !== 'float32') {
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`,
        );
      }
      const x = node.inputs[name]!;
      if (!tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(
          `Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
        );
      }
      const previous = grads[x.id];
      if (previous == null) {
        grads[x.id] = dx;
      } else {
        grads[x.id] = tf.add(previous, dx);
        previous.dispose();
      }
    }
  }
}

function linearGradients(
  this: EngineInternals,
  f: () => tf.Tensor,
  xs: tf.Tensor[],
  dy?: tf.Tensor,
  allowNoGradients = false,
): { value: tf.Tensor; grads: (tf.Tensor | undefined)[] } {
  if (xs.length === 0) throw new Error('gradients() received an empty list of xs.');
  if (dy != null && dy.dtype !== 'float32') throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
  const y = this.scopedRun(
    () => this.startTape(),
    () => this.endTape(),
    () => this.tidy('forward', f),
  );
  // Duck-typed: a second copy of tfjs-core shares this engine but has its own Tensor class.
  if (y == null || typeof y !== 'object' || !('dataId' in y)) throw new Error('The result y returned by f() must be a tensor.');
  const tape = this.state.activeTape ?? [];
  const filtered = filterTape(tape, xs, y);
  if (!allowNoGradients && filtered.length === 0 && xs.length > 0) {
    // tfjs-core keeps the tape's saved tensors here until the next gradient; nothing can use them.
    if (this.state.gradientDepth === 0) disposeTape(this.state);
    throw new Error(
      'Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.',
    );
  }
  return this.tidy('backward', () => {
    const grads: Record<number, tf.Tensor> = { [y.id]: dy ?? tf.ones(y.shape) };
    backpropagate(grads, filtered, (g) => this.tidy(g));
    const out = xs.map((x) => grads[x.id]);
    // Not inside another gradient: nothing can backprop through this tape again.
    if (this.state.gradientDepth === 0) disposeTape(this.state);
    return { value: y, grads: out };
  }) as { value: tf.Tensor; grads: (tf.Tensor | undefined)[] };
}

/** Disposes what the tape's nodes saved for their backward pass, and drops the tape. */
function disposeTape(state: EngineInternals['state']): void {
  for (const node of state.activeTape ?? []) for (const t of node.saved ?? []) t.dispose();
  state.activeTape = null;
}

let stockGradients: GradientsFn | null = null;

/**
 * Makes the tfjs engine filter its gradient tape in linear time (see the top of this file). Called
 * when @ettjs/backend loads; idempotent. Returns the engine's previous `gradients`, for comparison.
 */
export function installLinearTapeFilter(): GradientsFn {
  const engine = tf.engine() as unknown as EngineInternals;
  if (stockGradients == null) {
    stockGradients = engine.gradients;
    engine.gradients = linearGradients;
  }
  return stockGradients;
}
