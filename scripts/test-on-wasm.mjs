// Runs a package's tests a second time on the wasm backend (ETT_TEST_BACKEND=wasm, read by
// vitest.setup.ts), with the native kernels where they load, as users train: the model packages'
// fixtures from PyTorch then check the fast kernels too, not only tfjs's cpu backend. Used by their
// `test` scripts after the cpu run; arguments go to `vitest run`.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const vitest = path.join(path.dirname(require.resolve('vitest/package.json')), 'vitest.mjs');
console.log('\nThe same tests on the wasm backend (ETT_TEST_BACKEND=wasm, native kernels where they load):');
const run = spawnSync(process.execPath, [vitest, 'run', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, ETT_TEST_BACKEND: 'wasm' },
});
if (run.error) throw run.error;
process.exit(run.status ?? 1);
