// Imports every ETT.js package through its ESM entry and checks each exposes its public API.
import assert from 'node:assert/strict';

const names = [
  '@ettjs/core',
  '@ettjs/backend',
  '@ettjs/vector-quantizer',
  '@ettjs/projector',
  '@ettjs/autoregressive-lm',
  '@ettjs/losses',
  '@ettjs/trainer',
  '@ettjs/data',
  'ettjs',
];
for (const name of names) {
  const mod = await import(name);
  const exported = Object.keys(mod).filter((k) => k !== 'default');
  assert.ok(exported.length > 0, `${name} exports nothing through ESM`);
  console.log(`esm ${name}: ${exported.length} exports`);
}
const { initBackend } = await import('@ettjs/backend');
const tf = await import('@tensorflow/tfjs-core');
await initBackend({ backend: 'cpu' });
const g = tf.grad((x) => tf.sum(tf.square(x)))(tf.tensor1d([1, 2, 3]));
assert.deepEqual(Array.from(g.dataSync()), [2, 4, 6]);
console.log('esm smoke: ok');
