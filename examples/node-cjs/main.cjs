// Requires every ETT.js package through its CommonJS entry and checks each exposes its public API.
const assert = require('node:assert/strict');

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
  const mod = require(name);
  const exported = Object.keys(mod).filter((k) => k !== 'default');
  assert.ok(exported.length > 0, `${name} exports nothing through CommonJS`);
  console.log(`cjs ${name}: ${exported.length} exports`);
}
const { initBackend } = require('@ettjs/backend');
const tf = require('@tensorflow/tfjs-core');
initBackend({ backend: 'cpu' }).then(() => {
  const g = tf.grad((x) => tf.sum(tf.square(x)))(tf.tensor1d([1, 2, 3]));
  assert.deepEqual(Array.from(g.dataSync()), [2, 4, 6]);
  console.log('cjs smoke: ok');
});
