// Backend selection with injected module loaders and GPU probes: tfjs-node(-gpu) cannot be installed
// on the build machines, so a fake "tfjs-node" registers a 'tensorflow' backend (the cpu backend
// under another name) the way the real package does when it is imported.
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { doctor, formatDoctorReport } from './doctor';
import type { GpuInfo } from './gpu';
import { detectGpu } from './gpu';
import { BackendInitError, type ModuleLoader, importOptional, initBackend } from './init';
import { dawnCandidates } from './webgpu/adapter';

const GPU: GpuInfo = { visible: true, devices: ['Fake GPU'], driver: '535.0', cuda11: false, cudnn8: false, detail: 'test probe' };
const NO_GPU: GpuInfo = { visible: false, devices: [], driver: null, cuda11: null, cudnn8: null, detail: 'test probe: none' };

/** A loader where `installed` maps package names to what importing them does. */
function loader(installed: Record<string, () => unknown>): { load: ModuleLoader; loaded: string[] } {
  const loaded: string[] = [];
  return {
    loaded,
    load: async (name) => {
      const m = installed[name];
      if (m == null) return null;
      loaded.push(name);
      return m();
    },
  };
}
/** What importing tfjs-node(-gpu) does: register the 'tensorflow' backend. */
function fakeTfjsNode(opts: { gpu?: boolean; broken?: boolean } = {}) {
  return () => {
    tf.registerBackend('tensorflow', () => {
      if (opts.broken) throw new Error('libtensorflow.so.2: cannot open shared object file');
      return Object.assign(new MathBackendCPU(), { isUsingGpuDevice: opts.gpu === true });
    });
    return { version: { 'tfjs-node': '4.22.0' } };
  };
}

beforeAll(() => {
  for (const k of tf.getKernelsForBackend('cpu')) tf.registerKernel({ ...k, backendName: 'tensorflow' });
});
afterEach(async () => {
  await tf.setBackend('cpu');
  if (tf.engine().registryFactory['tensorflow'] != null) tf.removeBackend('tensorflow');
  if (tf.engine().registryFactory['webgpu'] != null) tf.removeBackend('webgpu');
});
afterAll(() => {
  for (const k of tf.getKernelsForBackend('tensorflow')) tf.unregisterKernel(k.kernelName, 'tensorflow');
});

describe('automatic selection', () => {
  it('takes tfjs-node-gpu when it is installed and a GPU is visible, and says it runs on the GPU', async () => {
    const { load } = loader({ '@tensorflow/tfjs-node-gpu': fakeTfjsNode({ gpu: true }), '@tensorflow/tfjs-node': fakeTfjsNode() });
    const r = await initBackend({ env: {}, loadModule: load, detectGpu: () => GPU });
    expect(r).toMatchObject({ backend: 'tensorflow', package: '@tensorflow/tfjs-node-gpu', device: 'gpu', source: 'auto', warnings: [] });
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('detects tfjs-node-gpu falling back to CPU (CUDA/cuDNN mismatch) and says so', async () => {
    const { load } = loader({ '@tensorflow/tfjs-node-gpu': fakeTfjsNode({ gpu: false }) });
    const r = await initBackend({ env: {}, loadModule: load, detectGpu: () => GPU });
    expect(r.package).toBe('@tensorflow/tfjs-node-gpu');
    expect(r.device).toBe('cpu');
    expect(r.warnings.join(' ')).toMatch(/fell back to CPU.*CUDA 11\.2 and cuDNN 8\.1.*libcudart\.so\.11\.0 missing/);
  });

  it('skips tfjs-node-gpu without a GPU and takes tfjs-node', async () => {
    const { load, loaded } = loader({ '@tensorflow/tfjs-node-gpu': fakeTfjsNode({ gpu: true }), '@tensorflow/tfjs-node': fakeTfjsNode() });
    const r = await initBackend({ env: {}, loadModule: load, detectGpu: () => NO_GPU });
    expect(loaded).toEqual(['@tensorflow/tfjs-node']);
    expect(r).toMatchObject({ backend: 'tensorflow', package: '@tensorflow/tfjs-node', device: 'cpu' });
    expect(r.attempts.map((a) => [a.candidate, a.outcome])).toEqual([
      ['@tensorflow/tfjs-node-gpu', 'skipped'],
      ['webgpu', 'skipped'],
      ['@tensorflow/tfjs-node', 'chosen'],
    ]);
  });

  it('records an installed package that fails to load and moves on', async () => {
    const { load } = loader({
      '@tensorflow/tfjs-node-gpu': () => {
        throw new Error('The specified module could not be found: tfjs_binding.node');
      },
      '@tensorflow/tfjs-node': fakeTfjsNode(),
    });
    const r = await initBackend({ env: {}, loadModule: load, detectGpu: () => GPU });
    expect(r.package).toBe('@tensorflow/tfjs-node');
    expect(r.attempts[0]).toMatchObject({ candidate: '@tensorflow/tfjs-node-gpu', outcome: 'failed' });
    expect(r.attempts[0]!.detail).toMatch(/installed but failed to load.*tfjs_binding/);
  });
});

// A fake Dawn (the `webgpu` package) whose adapters are named, and a fake tfjs-backend-webgpu that
// registers the cpu backend (with a device) under the name 'webgpu', as the real one does on import.
function fakeDawn(adapter: string | null) {
  return () => ({
    globals: {},
    create: () => ({
      requestAdapter: async () =>
        adapter == null
          ? null
          : {
              info: { vendor: 'test', architecture: '', device: adapter, description: adapter },
              limits: { maxStorageBuffersPerShaderStage: 8 },
              features: new Set(),
              requestDevice: async () => ({}),
            },
    }),
  });
}
function fakeTfjsWebGpu() {
  return () => {
    for (const k of tf.getKernelsForBackend('cpu')) {
      if (tf.getKernel(k.kernelName, 'webgpu') == null) tf.registerKernel({ ...k, backendName: 'webgpu' });
    }
    tf.registerBackend('webgpu', () =>
      Object.assign(new MathBackendCPU(), {
        device: { limits: { maxStorageBuffersPerShaderStage: 8 }, queue: { onSubmittedWorkDone: async () => {} } },
      }),
    );
    return { version_webgpu: '4.22.0' };
  };
}
// ETT_WEBGPU_FLAGS makes the probe skip the Vulkan-loader check (the fake needs no Vulkan).
const WEBGPU_ENV = { ETT_WEBGPU_FLAGS: 'backend=vulkan' };

describe('WebGPU selection', () => {
  it('takes a hardware WebGPU adapter over tfjs-node and tfjs-node-gpu that runs on the CPU, and names it', async () => {
    const { load } = loader({
      '@tensorflow/tfjs-node-gpu': fakeTfjsNode({ gpu: false }),
      webgpu: fakeDawn('NVIDIA H100'),
      '@tensorflow/tfjs-backend-webgpu': fakeTfjsWebGpu(),
    });
    const r = await initBackend({ env: WEBGPU_ENV, loadModule: load, detectGpu: () => GPU });
    expect(r).toMatchObject({ backend: 'webgpu', device: 'gpu', webgpu: { name: 'NVIDIA H100', software: false } });
    expect(r.reason).toMatch(/WebGPU adapter \(NVIDIA H100\).*not on the GPU/);
    expect(r.patchedKernels).toEqual(['AddN', 'Conv2DBackpropFilter', 'EttGroupNorm', 'EttGroupNormGrad', 'EttSumSquares']);
    expect(tf.getBackend()).toBe('webgpu');
    expect(formatDoctorReport(await doctor({ env: WEBGPU_ENV, loadModule: load, detectGpu: () => GPU }))).toMatch(
      /adapter +NVIDIA H100, Dawn backend=vulkan/,
    );
  });

  it('keeps tfjs-node-gpu first when it really runs on the GPU', async () => {
    const { load, loaded } = loader({
      '@tensorflow/tfjs-node-gpu': fakeTfjsNode({ gpu: true }),
      webgpu: fakeDawn('NVIDIA H100'),
      '@tensorflow/tfjs-backend-webgpu': fakeTfjsWebGpu(),
    });
    const r = await initBackend({ env: WEBGPU_ENV, loadModule: load, detectGpu: () => GPU });
    expect(r).toMatchObject({ backend: 'tensorflow', device: 'gpu' });
    expect(loaded).not.toContain('webgpu');
  });

  it('never picks a software adapter by itself, but takes it when asked by name, with a warning', async () => {
    const { load } = loader({ webgpu: fakeDawn('llvmpipe (LLVM 15.0.6, 256 bits)'), '@tensorflow/tfjs-backend-webgpu': fakeTfjsWebGpu() });
    const auto = await initBackend({ env: WEBGPU_ENV, loadModule: load, detectGpu: () => NO_GPU });
    expect(auto.backend).toBe('wasm');
    expect(auto.attempts.find((a) => a.candidate === 'webgpu')).toMatchObject({
      outcome: 'skipped',
      detail: expect.stringMatching(/only a software adapter \(llvmpipe/),
    });
    const { load: load2 } = loader({ webgpu: fakeDawn('llvmpipe (LLVM 15.0.6, 256 bits)') });
    const r0 = await initBackend({ env: { ...WEBGPU_ENV, ETT_BACKEND: 'webgpu' }, loadModule: load2, detectGpu: () => NO_GPU }).catch(
      (e) => e,
    );
    expect(r0).toBeInstanceOf(BackendInitError);
    expect((r0 as Error).message).toMatch(/llvmpipe.*@tensorflow\/tfjs-backend-webgpu is not installed/s);
    const r = await initBackend({ backend: 'webgpu', env: WEBGPU_ENV, loadModule: load, detectGpu: () => NO_GPU });
    expect(r).toMatchObject({ backend: 'webgpu', device: 'cpu', webgpu: { software: true } });
    expect(r.warnings.join(' ')).toMatch(/software adapter \(llvmpipe/);
  });

  it('ETT_WEBGPU_FLAGS splits on whitespace only: a comma belongs to a Dawn flag value', () => {
    const env = { ETT_WEBGPU_FLAGS: ' enable-dawn-features=skip_validation,disable_robustness  backend=vulkan ' };
    const flags = ['enable-dawn-features=skip_validation,disable_robustness', 'backend=vulkan'];
    expect(dawnCandidates('linux', env)).toEqual([
      { flags, featureLevel: 'core' },
      { flags, featureLevel: 'compatibility' },
    ]);
    expect(dawnCandidates('linux', {})).toEqual([
      { flags: [], featureLevel: 'core' },
      { flags: ['backend=opengles'], featureLevel: 'compatibility' },
    ]);
  });

  it('asked for by name without any adapter, fails and says what was tried', async () => {
    const none = loader({ webgpu: fakeDawn(null) });
    await expect(initBackend({ backend: 'webgpu', env: WEBGPU_ENV, loadModule: none.load, detectGpu: () => NO_GPU })).rejects.toThrow(
      /WebGPU could not be started[\s\S]*no WebGPU adapter/,
    );
  });
});

describe('an explicit choice is honoured or fails loudly', () => {
  it('ETT_BACKEND=tensorflow with nothing installed throws, naming both packages and the CUDA note', async () => {
    const { load } = loader({});
    const err = await initBackend({ env: { ETT_BACKEND: 'tensorflow' }, loadModule: load, detectGpu: () => NO_GPU }).catch((e) => e);
    expect(err).toBeInstanceOf(BackendInitError);
    expect(err.message).toMatch(/ETT_BACKEND=tensorflow.*tfjs-node-gpu.*tfjs-node.*CUDA 11\.2/s);
    expect(tf.getBackend()).toBe('cpu');
  });

  it('never reports a backend that failed to start: a broken tensorflow backend throws instead of staying on cpu silently', async () => {
    const { load } = loader({ '@tensorflow/tfjs-node': fakeTfjsNode({ broken: true }) });
    const err = await initBackend({ backend: 'tensorflow', loadModule: load, detectGpu: () => NO_GPU }).catch((e) => e);
    expect(err).toBeInstanceOf(BackendInitError);
    expect(err.message).toMatch(/setBackend\('tensorflow'\) returned false/);
    expect(tf.getBackend()).toBe('cpu');
  });

  it('the option wins over ETT_BACKEND', async () => {
    const r = await initBackend({ backend: 'cpu', env: { ETT_BACKEND: 'wasm' }, loadModule: loader({}).load });
    expect(r).toMatchObject({ backend: 'cpu', source: 'option', threads: 1 });
  });

  it('ETT_BACKEND=cpu is reported as the source', async () => {
    const r = await initBackend({ env: { ETT_BACKEND: ' CPU ' }, loadModule: loader({}).load });
    expect(r).toMatchObject({ backend: 'cpu', source: 'ETT_BACKEND' });
  });

  it('rejects bad names and thread counts with what was expected', async () => {
    await expect(initBackend({ env: { ETT_BACKEND: 'webgl' } })).rejects.toThrow(
      /ETT_BACKEND must be one of tensorflow \| webgpu \| wasm \| cpu, got "webgl"/,
    );
    await expect(initBackend({ backend: 'gpu' as never })).rejects.toThrow(BackendInitError);
    await expect(initBackend({ backend: 'wasm', threads: 0 })).rejects.toThrow(/threads must be a positive integer, got 0/);
    await expect(initBackend({ backend: 'wasm', env: { ETT_WASM_THREADS: 'two' } })).rejects.toThrow(
      /ETT_WASM_THREADS must be a positive integer, got "two"/,
    );
  });
});

describe('initBackend', () => {
  it('is idempotent and quick when repeated', async () => {
    const first = await initBackend({ backend: 'cpu' });
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) await initBackend({ backend: 'cpu' });
    expect((performance.now() - t0) / 100).toBeLessThan(5);
    expect(await initBackend({ backend: 'cpu' })).toEqual(first);
    // Reports are copies: editing one does not change the next.
    first.warnings.push('edited');
    expect((await initBackend({ backend: 'cpu' })).warnings).not.toContain('edited');
  });

  it('registers gradients and chained ops', async () => {
    await initBackend({ backend: 'cpu' });
    const g = tf.tidy(() => tf.grad((x: tf.Tensor) => x.square().sum())(tf.tensor1d([1, -2])));
    expect(Array.from(await g.data())).toEqual([2, -4]);
    g.dispose();
  });

  it('the default loader returns null for a package that is not installed', async () => {
    expect(await importOptional('@tensorflow/tfjs-node-gpu')).toBeNull();
    await expect(importOptional('@ettjs/does-not-exist-anywhere')).resolves.toBeNull();
  });
});

describe('detectGpu and doctor', () => {
  it('CUDA_VISIBLE_DEVICES=-1 hides the GPU', () => {
    expect(detectGpu({ CUDA_VISIBLE_DEVICES: '-1' })).toMatchObject({
      visible: false,
      detail: expect.stringContaining('CUDA_VISIBLE_DEVICES'),
    });
  });

  it('doctor reports backend, versions, GPU and advice, and formats them', async () => {
    const r = await doctor({ backend: 'cpu', detectGpu: () => GPU });
    expect(r.backend.backend).toBe('cpu');
    expect(r.tfjsCore).toBe(tf.version_core);
    expect(r.gradients).toBe(true);
    expect(r.kernels).toEqual([]);
    expect(r.advice.join(' ')).toMatch(/A GPU is visible but unused/);
    const text = formatDoctorReport(r);
    expect(text).toMatch(/^backend {6}cpu \(@tensorflow\/tfjs-backend-cpu 4\.22\.0\) on cpu/);
    expect(text).toMatch(/GPU {10}Fake GPU \(driver 535\.0\)/);
  });
});
