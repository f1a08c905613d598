import * as tf from '@tensorflow/tfjs-core';

/**
 * `sg(x)`: forward value `x`, zero gradient. tfjs has no stop-gradient op (tensorflow/tfjs#7438),
 * so it is a `customGrad` whose gradient is zeros.
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [a, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([a]);
    return { value: tf.clone(a), gradFunc: (_dy: tf.Tensor, saved: tf.Tensor[]) => [tf.zerosLike(saved[0])] };
  });
  return f(x) as T;
}

/**
 * Straight-through estimator: the forward value is `hard`, the gradient flows to `soft` unchanged
 * (`hard − sg(soft) + soft`, computed as one customGrad so the forward value is exactly `hard`).
 * `hard` gets no gradient. Shapes must match.
 */
export function straightThrough<T extends tf.Tensor>(hard: T, soft: T): T {
  if (!tf.util.arraysEqual(hard.shape, soft.shape)) {
    throw new Error(`straightThrough: hard [${hard.shape}] and soft [${soft.shape}] must have the same shape`);
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [h, , save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([h]);
    return {
      value: tf.clone(h),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.zerosLike(saved[0]), tf.clone(dy)],
    };
  });
  return f(hard, soft) as T;
}

/**
 * `tf.variableGrads` keyed by parameter name (`Module.namedTrainableVariables()` names) instead of
 * tfjs's internal variable names, ready for `AdamW.step` and `clipByGlobalNorm`. Non-trainable
 * (frozen) variables and variables the loss does not depend on get no entry. The caller owns
 * `value` and the gradients.
 */
export function namedVariableGrads(
  f: () => tf.Scalar,
  params: [string, tf.Variable][],
): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const trainable = params.filter(([, v]) => v.trainable);
  if (trainable.length === 0) {
    throw new Error(
      `namedVariableGrads: none of the ${params.length} parameter(s) is trainable; unfreeze some or pass module.namedTrainableVariables()`,
    );
  }
  const { value, grads } = tf.variableGrads(
    f,
    trainable.map(([, v]) => v),
  );
  const named: Record<string, tf.Tensor> = {};
  for (const [name, v] of trainable) {
    const g = grads[v.name];
    if (g) named[name] = g;
  }
  return { value, grads: named };
}

/**
 * Runs `fn` with the gradient tape off and returns its result detached from every input.
 *
 * Why: code indices are computed from the encoder output `z`, but in tfjs `gather(table, idx)`
 * fails in backprop ("gradient of input indices must have 'float32' dtype") when `idx` depends on
 * a taped tensor, and a taped argMax keeps its `[N, K]` logits alive until backprop. Ops inside
 * a `customGrad` forward are never recorded (the engine raises its kernel depth), and a dummy
 * input makes the result independent of `z` in the tape's eyes, so gathering with it is safe.
 */
export function untaped<T extends tf.Tensor>(fn: () => T): T {
  const dummy = tf.scalar(0);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const d = args[0] as tf.Tensor;
    return { value: fn(), gradFunc: () => [tf.zerosLike(d)] };
  });
  const out = f(dummy) as T;
  dummy.dispose();
  return out;
}
