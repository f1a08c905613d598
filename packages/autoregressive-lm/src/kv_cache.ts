import type { KVCache } from '@ettjs/core';
import * as tf from '@tensorflow/tfjs-core';

/**
 * Keys and values of every layer for incremental decoding, plus the key padding mask seen so far.
 * Inference only: the cache disposes the previous step's tensors as it grows, so do not take
 * gradients through a forward that used a cache.
 */
export class LMKVCache implements KVCache {
  readonly #keys: (tf.Tensor4D | null)[]; // per layer [B, KV, S, D]
  readonly #values: (tf.Tensor4D | null)[];
  #keyMask: tf.Tensor2D | null = null; // [B, S] float 0/1, only once a mask was given
  #length = 0;
  #batchSize: number | null = null;
  #disposed = false;

  constructor(readonly numLayers: number) {
    this.#keys = new Array(numLayers).fill(null);
    this.#values = new Array(numLayers).fill(null);
  }

  /** Number of cached positions. */
  get length(): number {
    return this.#length;
  }

  /** Batch size fixed by the first forward, or null while empty. */
  get batchSize(): number | null {
    return this.#batchSize;
  }

  /** The accumulated key mask `[B, length]`, or null when every position is attended. */
  get keyMask(): tf.Tensor2D | null {
    return this.#keyMask;
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }

  #check(): void {
    if (this.#disposed) throw new Error('LMKVCache: the cache was disposed; create a new one with lm.newCache()');
  }

  /**
   * Appends this step's keys/values `[B, KV, T, D]` for `layer`, returns the full `[B, KV, S, D]`.
   * The returned tensors are kept by the cache (never dispose them); the previous ones are freed.
   */
  update(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
    this.#check();
    const pastK = this.#keys[layer];
    const pastV = this.#values[layer];
    const fullK = pastK ? (tf.concat([pastK, k], 2) as tf.Tensor4D) : k;
    const fullV = pastV ? (tf.concat([pastV, v], 2) as tf.Tensor4D) : v;
    tf.keep(fullK);
    tf.keep(fullV);
    pastK?.dispose();
    pastV?.dispose();
    this.#keys[layer] = fullK;
    this.#values[layer] = fullV;
    return { k: fullK, v: fullV };
  }

  /** Called by the model once all layers ran: records the new length, batch size and key mask. */
  commit(added: number, batchSize: number, keyMask: tf.Tensor2D | null): void {
    this.#check();
    this.#length += added;
    this.#batchSize = batchSize;
    if (keyMask !== this.#keyMask) {
      this.#keyMask?.dispose();
      this.#keyMask = keyMask ? tf.keep(keyMask) : null;
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of [...this.#keys, ...this.#values]) t?.dispose();
    this.#keyMask?.dispose();
    this.#keyMask = null;
  }
}
