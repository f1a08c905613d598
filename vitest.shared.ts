import { fileURLToPath } from 'node:url';
import { defineProject } from 'vitest/config';

const setup = fileURLToPath(new URL('./vitest.setup.ts', import.meta.url));

/**
 * Test config shared by every package: resolve workspace packages to their `src` (the
 * `@ettjs/source` export condition), pre-bundle tfjs-core's ESM gradient registrations (Node
 * cannot load them as they are), init the backend and fail any test that leaks tensors.
 */
export function packageProject(name: string) {
  return defineProject({
    resolve: { conditions: ['@ettjs/source', 'import', 'module', 'node', 'default'] },
    ssr: { resolve: { conditions: ['@ettjs/source', 'import', 'node', 'default'] } },
    test: {
      name,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      setupFiles: [setup],
      testTimeout: 120_000,
      hookTimeout: 120_000,
      pool: 'forks',
      deps: {
        optimizer: {
          ssr: {
            enabled: true,
            include: [
              '@tensorflow/tfjs-core/dist/register_all_gradients',
              '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops',
            ],
          },
        },
      },
    },
  });
}
