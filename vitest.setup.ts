import { initBackend } from '@ettjs/backend';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, beforeAll, beforeEach, expect } from 'vitest';

beforeAll(async () => {
  await initBackend({ backend: (process.env.ETT_TEST_BACKEND as 'cpu' | 'wasm' | undefined) ?? 'cpu' });
});
let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors - before, 'tensors leaked by this test').toBe(0);
});
