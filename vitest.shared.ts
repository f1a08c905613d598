import { fileURLToPath } from 'node:url';
import { defineProject } from 'vitest/config';

const setup = fileURLToPath(new URL('./vitest.setup.ts', import.meta.url));

/**
 * Test config shared by every package: resolve workspace packages to their `src` (the
 * `@ettjs/source` export condition), inline tfjs-core's ESM files so its gradient
 * registrations load in Node, init the backend and fail any test that leaks tensors.
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
      server: { deps: { inline: [/@tensorflow[\\/]tfjs-core[\\/]dist[\\/](?!tf-core)/] } },
    },
  });
}
