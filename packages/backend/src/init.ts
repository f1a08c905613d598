import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { gradientsRegistered } from './gradients';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export interface InitBackendOptions {
  backend?: BackendName;
}
export interface BackendReport {
  backend: string;
  reason: string;
}

export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  if (!gradientsRegistered()) throw new Error('gradients not registered');
  const want = options.backend ?? 'cpu';
  const ok = await tf.setBackend(want);
  if (!ok || tf.getBackend() !== want) throw new Error(`backend ${want} failed`);
  return { backend: want, reason: 'requested' };
}
