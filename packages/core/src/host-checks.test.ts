import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  checkOnHost,
  hostReadsAreSync,
  MAX_PENDING_HOST_CHECKS,
  pendingHostChecks,
  setHostReadMode,
  settleHostChecks,
} from './host-checks';

afterEach(async () => {
  setHostReadMode('auto');
  await settleHostChecks().catch(() => {});
});

/** A check that records the values it saw and rejects negative ones. */
function recorder() {
  const seen: number[][] = [];
  const check = (v: tf.TypedArray) => {
    seen.push(Array.from(v));
    if (v.some((x) => x < 0)) throw new RangeError(`negative value in [${Array.from(v)}]`);
  };
  return { seen, check };
}

describe('host checks', () => {
  it('auto mode reads synchronously on cpu and runs the check at once, freeing the tensor', () => {
    expect(tf.getBackend()).not.toBe('webgpu');
    expect(hostReadsAreSync()).toBe(true);
    const r = recorder();
    const before = tf.memory().numTensors;
    checkOnHost(tf.tensor1d([1, 2, 3]), r.check);
    expect(r.seen).toEqual([[1, 2, 3]]);
    expect(() => checkOnHost(tf.tensor1d([1, -2]), r.check)).toThrow(/negative value in \[1,-2\]/);
    expect(tf.memory().numTensors).toBe(before);
    expect(pendingHostChecks()).toBe(0);
  });

  it('deferred mode queues checks made inside tf.tidy and runs them, in order, at settle', async () => {
    setHostReadMode('deferred');
    expect(hostReadsAreSync()).toBe(false);
    const r = recorder();
    const before = tf.memory().numTensors;
    const out = tf.tidy(() => {
      const x = tf.tensor1d([4, 5]);
      checkOnHost(tf.mul(x, 2), r.check);
      checkOnHost(tf.add(x, 1), r.check);
      return tf.sum(x);
    });
    expect(r.seen).toEqual([]); // nothing read yet
    expect(pendingHostChecks()).toBe(2);
    await settleHostChecks();
    expect(r.seen).toEqual([
      [8, 10],
      [5, 6],
    ]);
    expect(pendingHostChecks()).toBe(0);
    out.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('settle runs every check, throws the first failure, and empties the queue', async () => {
    setHostReadMode('deferred');
    const r = recorder();
    const before = tf.memory().numTensors;
    checkOnHost(tf.tensor1d([1]), r.check);
    checkOnHost(tf.tensor1d([-1]), r.check);
    checkOnHost(tf.tensor1d([-7]), r.check);
    await expect(settleHostChecks()).rejects.toThrow(/negative value in \[-1\]/);
    expect(r.seen).toEqual([[1], [-1], [-7]]);
    expect(pendingHostChecks()).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    await settleHostChecks(); // nothing left: resolves
  });

  it('drops the oldest checks past the cap with one warning, keeping memory bounded', async () => {
    setHostReadMode('deferred');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      const before = tf.memory().numTensors;
      const r = recorder();
      for (let i = 0; i < MAX_PENDING_HOST_CHECKS + 3; i++) checkOnHost(tf.scalar(i), r.check);
      expect(pendingHostChecks()).toBe(MAX_PENDING_HOST_CHECKS);
      expect(tf.memory().numTensors).toBe(before + MAX_PENDING_HOST_CHECKS);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/settleHostChecks/);
      await settleHostChecks();
      expect(r.seen[0]).toEqual([3]); // 0, 1, 2 were dropped
      expect(r.seen.length).toBe(MAX_PENDING_HOST_CHECKS);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      warn.mockRestore();
    }
  });

  it('rejects an unknown mode', () => {
    expect(() => setHostReadMode('lazy' as never)).toThrow(/'auto', 'sync' or 'deferred'/);
  });
});
