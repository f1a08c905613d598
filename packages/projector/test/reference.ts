import { readFileSync } from 'node:fs';

/** Tensors as written by bench/reference/projector.py (PyTorch, float64). */
export interface RefTensor {
  shape: number[];
  data: number[];
}

export interface MlpCase {
  name: string;
  config: { inputDim: number; outputDim: number; depth: number; hiddenDim: number; activation: 'gelu' | 'gelu-tanh' };
  state: Record<string, RefTensor>;
  x: RefTensor;
  r: RefTensor;
  y: RefTensor;
  gradX: number[];
  grads: Record<string, number[]>;
}

export interface Reference {
  torch: string;
  mlp: MlpCase[];
  embedding: {
    config: { codebookSize: number; outputDim: number };
    weight: RefTensor;
    indices: number[][];
    r: RefTensor;
    y: number[];
    grad: number[];
  };
}

export const reference: Reference = JSON.parse(readFileSync(new URL('./fixtures/projector-reference.json', import.meta.url), 'utf8'));

/** Largest |a − b| / (1 + |b|) over two arrays of equal length. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxRelDiff: lengths ${a.length} and ${b.length} differ`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return m;
}
