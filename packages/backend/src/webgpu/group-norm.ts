import * as tf from '@tensorflow/tfjs-core';
import { GROUP_NORM, GROUP_NORM_GRAD, type GroupNormAttrs, checkGroupNormShapes, registerGroupNormGradient } from '../fused/group-norm';

// GroupNorm + affine (+ SiLU) as WGSL programs for the webgpu backend: 2 dispatches forward and 5
// backward where the composition of tfjs ops is about 12 and 24. On WebGPU each op costs 25–100 µs
// of host time whatever its size (docs/performance.md, "WebGPU on an NVIDIA H100"), so the count
// of dispatches is what a step costs there. Statistics are reduced by one workgroup of 256 threads
// per (sample, group) (sums about the group's first element, float32, in a tree over the workgroup);
// the per-channel gamma/beta gradients by one workgroup per channel.

/** tfjs-backend-webgpu 4.22's program shape: WGSL built around getUserCode (see its webgpu_program.ts). */
interface Program {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  size?: boolean;
  uniforms: string;
  getUserCode(): string;
}
type Uniform = { type: 'int32' | 'float32'; data: number[] };
interface WebGpuBackendLike extends tf.KernelBackend {
  runWebGPUProgram(program: Program, inputs: tf.TensorInfo[], dtype: tf.DataType, uniforms?: Uniform[]): tf.TensorInfo;
}

const WG = 256;
const UNIFORMS = 'hw : i32, c : i32, groups : i32, n : i32, eps : f32,';

function uniforms(hw: number, c: number, groups: number, n: number, eps: number): Uniform[] {
  return [
    { type: 'int32', data: [hw] },
    { type: 'int32', data: [c] },
    { type: 'int32', data: [groups] },
    { type: 'int32', data: [n] },
    { type: 'float32', data: [eps] },
  ];
}

/**
 * WGSL: a phony read of every input. Pipelines are made with layout 'auto', which leaves out bindings
 * a shader never reads (beta without SiLU, say), and tfjs binds every input.
 */
function touch(names: string[]): string {
  return names.map((n) => `_ = ${n}[0];`).join(' ');
}

/**
 * WGSL: two tree sums over the workgroup at once (call from uniform control flow); the totals are
 * valid in thread 0 only. Only thread 0 reads the result: handing a reduced value back to every
 * thread through workgroup memory gave stale values on Mesa llvmpipe (GLES), so every program here
 * finishes its reductions in thread 0.
 */
const WORKGROUP_SUM = `
  var<workgroup> partial : array<vec2<f32>, ${WG}>;
  fn workgroupSum(v : vec2<f32>) -> vec2<f32> {
    partial[localId.x] = v;
    workgroupBarrier();
    for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
      if (localId.x < s) { partial[localId.x] = partial[localId.x] + partial[localId.x + s]; }
      workgroupBarrier();
    }
    return partial[0];
  }`;

/** WGSL: dy times the derivative of the activation at u = xhat·gamma + beta, then times gamma (dxhat). */
function upstream(silu: boolean): string {
  return `
  fn upstream(xhat : f32, i : i32, ch : i32) -> f32 {
    var d = dy[i];
    ${silu ? 'let u = xhat * gamma[ch] + beta[ch];\n    let sg = 1.0 / (1.0 + exp(-u));\n    d = d * sg * (1.0 + u * (1.0 - sg));' : ''}
    return d;
  }`;
}

/**
 * A program of 256-thread workgroups over the shared uniforms: `helpers` (WGSL functions), then
 * `main` with a phony read of every input in `variableNames` (see touch) before `body`.
 */
function program(
  p: Pick<Program, 'variableNames' | 'outputShape' | 'shaderKey' | 'dispatchLayout' | 'dispatch'> &
    Partial<Pick<Program, 'size' | 'uniforms'>>,
  helpers: string,
  body: string,
): Program {
  return {
    workgroupSize: [WG, 1, 1],
    uniforms: UNIFORMS,
    ...p,
    getUserCode: () => `
  ${helpers}
  fn main(index : i32) {
    ${touch(p.variableNames)}
${body}
  }`,
  };
}

/**
 * One workgroup per (sample, group), writing two values per group ([B·G·2]). `body` sees wg (the
 * workgroup), cg (channels per group), g0 (the group's first channel) and base (its first element).
 */
function perGroup(b: number, groups: number, names: string[], key: string, helpers: string, body: string): Program {
  return program(
    { variableNames: names, outputShape: [b * groups * 2], shaderKey: key, dispatchLayout: { x: [0] }, dispatch: [b * groups, 1, 1] },
    `${WORKGROUP_SUM}\n${helpers}`,
    `
    let wg = i32(workgroupId.x);
    let cg = uniforms.c / uniforms.groups;
    let g0 = (wg % uniforms.groups) * cg;
    let base = (wg / uniforms.groups) * uniforms.hw * uniforms.c + g0;
${body}`,
  );
}

/** result[2·wg] = mean, result[2·wg + 1] = 1/sqrt(var + eps) of each (sample, group). */
function statsProgram(b: number, groups: number): Program {
  return perGroup(
    b,
    groups,
    ['x'],
    'ettGroupNormStats',
    '',
    `
    // Sums of (x − K) and (x − K)² about K = the group's first element (shifted data: no cancellation
    // when the mean is large against the spread).
    let shift = x[base];
    var acc = vec2<f32>(0.0, 0.0);
    for (var p = i32(localId.x); p < uniforms.hw; p = p + ${WG}) {
      for (var k = 0; k < cg; k = k + 1) {
        let d = x[base + p * uniforms.c + k] - shift;
        acc = acc + vec2<f32>(d, d * d);
      }
    }
    let total = workgroupSum(acc) / f32(uniforms.n);
    if (localId.x == 0u) {
      result[wg * 2] = shift + total.x;
      result[wg * 2 + 1] = 1.0 / sqrt(max(total.y - total.x * total.x, 0.0) + uniforms.eps);
    }`,
  );
}

/** WGSL: the flat element index's channel, and the offset of its (sample, group) pair in a [B·G·2] table. */
const ELEMENT = `
      let ch = index % uniforms.c;
      let pair = ((index / (uniforms.hw * uniforms.c)) * uniforms.groups + ch / (uniforms.c / uniforms.groups)) * 2;
      let xhat = (x[index] - st[pair]) * st[pair + 1];`;

/** One thread per element of `shape`: `body` runs with ch, pair and xhat of ELEMENT in scope. */
function flat(shape: number[], key: string, names: string[], helpers: string, body: string): Program {
  const size = shape.reduce((a, d) => a * d, 1);
  return program(
    {
      variableNames: names,
      outputShape: shape,
      shaderKey: key,
      dispatchLayout: { x: shape.map((_, i) => i) },
      dispatch: [Math.ceil(size / WG), 1, 1],
      size: true,
    },
    helpers,
    `
    if (index < uniforms.size) {
      ${ELEMENT}
${body}
    }`,
  );
}

/** y = act(xhat · gamma + beta). */
function applyProgram(shape: number[], silu: boolean): Program {
  return flat(
    shape,
    `ettGroupNormApply_${silu}`,
    ['x', 'st', 'gamma', 'beta'],
    '',
    `
      let u = xhat * gamma[ch] + beta[ch];
      setOutputAtIndex(index, ${silu ? 'u / (1.0 + exp(-u))' : 'u'});`,
  );
}

/** Per (sample, group): the means of dxhat and of dxhat · xhat, as [B·G·2]. */
function gradStatsProgram(b: number, groups: number, silu: boolean): Program {
  return perGroup(
    b,
    groups,
    ['x', 'st', 'gamma', 'beta', 'dy'],
    `ettGroupNormGradStats_${silu}`,
    upstream(silu),
    `
    let mean = st[wg * 2];
    let rstd = st[wg * 2 + 1];
    var acc = vec2<f32>(0.0, 0.0);
    for (var p = i32(localId.x); p < uniforms.hw; p = p + ${WG}) {
      for (var k = 0; k < cg; k = k + 1) {
        let i = base + p * uniforms.c + k;
        let xhat = (x[i] - mean) * rstd;
        let dxhat = upstream(xhat, i, g0 + k) * gamma[g0 + k];
        acc = acc + vec2<f32>(dxhat, dxhat * xhat);
      }
    }
    let total = workgroupSum(acc) / f32(uniforms.n);
    if (localId.x == 0u) {
      result[wg * 2] = total.x;
      result[wg * 2 + 1] = total.y;
    }`,
  );
}

/** dx = rstd · (dxhat − mean(dxhat) − xhat · mean(dxhat · xhat)). */
function gradXProgram(shape: number[], silu: boolean): Program {
  return flat(
    shape,
    `ettGroupNormGradX_${silu}`,
    ['x', 'st', 'ms', 'gamma', 'beta', 'dy'],
    upstream(silu),
    `
      let dxhat = upstream(xhat, index, ch) * gamma[ch];
      setOutputAtIndex(index, st[pair + 1] * (dxhat - ms[pair] - xhat * ms[pair + 1]));`,
  );
}

/** One workgroup per channel: Σ over samples and pixels of d · xhat (dgamma) or of d (dbeta). */
function gradAffineProgram(c: number, silu: boolean, beta: boolean): Program {
  return program(
    {
      variableNames: ['x', 'st', 'gamma', 'beta', 'dy'],
      outputShape: [c],
      shaderKey: `ettGroupNormGradAffine_${silu}_${beta}`,
      dispatchLayout: { x: [0] },
      dispatch: [c, 1, 1],
      uniforms: `${UNIFORMS} pixels : i32,`,
    },
    `${WORKGROUP_SUM}\n${upstream(silu)}`,
    `
    let ch = i32(workgroupId.x);
    let g = ch / (uniforms.c / uniforms.groups);
    var s = 0.0;
    for (var q = i32(localId.x); q < uniforms.pixels; q = q + ${WG}) {
      let i = q * uniforms.c + ch;
      let pair = ((q / uniforms.hw) * uniforms.groups + g) * 2;
      let xhat = (x[i] - st[pair]) * st[pair + 1];
      s = s + upstream(xhat, i, ch)${beta ? '' : ' * xhat'};
    }
    let total = workgroupSum(vec2<f32>(s, 0.0));
    if (localId.x == 0u) { result[ch] = total.x; }`,
  );
}

function statistics(backend: WebGpuBackendLike, x: tf.TensorInfo, attrs: GroupNormAttrs): [tf.TensorInfo, Uniform[]] {
  const [b, hw, c] = [x.shape[0]!, x.shape[1]! * x.shape[2]!, x.shape[3]!];
  const u = uniforms(hw, c, attrs.groups, hw * (c / attrs.groups), attrs.eps);
  return [backend.runWebGPUProgram(statsProgram(b, attrs.groups), [x], 'float32', u), u];
}

const groupNormKernel: tf.KernelFunc = ({ inputs, backend: be, attrs }) => {
  const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
  const a = attrs as unknown as GroupNormAttrs;
  checkGroupNormShapes(x, gamma, beta, a.groups);
  const backend = be as WebGpuBackendLike;
  const [st, u] = statistics(backend, x, a);
  try {
    return backend.runWebGPUProgram(applyProgram(x.shape, a.activation === 'silu'), [x, st, gamma, beta], 'float32', u);
  } finally {
    backend.disposeData(st.dataId);
  }
};

const groupNormGradKernel: tf.KernelFunc = ({ inputs, backend: be, attrs }) => {
  const { x, gamma, beta, dy } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as GroupNormAttrs;
  const [b, , c] = checkGroupNormShapes(x, gamma, beta, a.groups);
  const silu = a.activation === 'silu';
  const backend = be as WebGpuBackendLike;
  const [st, u] = statistics(backend, x, a);
  let ms: tf.TensorInfo | null = null;
  try {
    const saved = [x, st, gamma, beta, dy];
    ms = backend.runWebGPUProgram(gradStatsProgram(b, a.groups, silu), saved, 'float32', u);
    const dx = backend.runWebGPUProgram(gradXProgram(x.shape, silu), [x, st, ms, gamma, beta, dy], 'float32', u);
    const pixels: Uniform[] = [...u, { type: 'int32', data: [b * x.shape[1]! * x.shape[2]!] }];
    const dgamma = backend.runWebGPUProgram(gradAffineProgram(c, silu, false), saved, 'float32', pixels);
    const dbeta = backend.runWebGPUProgram(gradAffineProgram(c, silu, true), saved, 'float32', pixels);
    return [dx, dgamma, dbeta];
  } finally {
    backend.disposeData(st.dataId);
    if (ms != null) backend.disposeData(ms.dataId);
  }
};

/** Registers the GroupNorm kernels for webgpu (and the shared gradient); returns their names. */
export function registerWebGpuGroupNorm(): string[] {
  for (const [kernelName, kernelFunc] of [
    [GROUP_NORM, groupNormKernel],
    [GROUP_NORM_GRAD, groupNormGradKernel],
  ] as const) {
    if (tf.getKernel(kernelName, 'webgpu') == null) tf.registerKernel({ kernelName, backendName: 'webgpu', kernelFunc });
  }
  registerGroupNormGradient();
  return [GROUP_NORM, GROUP_NORM_GRAD];
}
