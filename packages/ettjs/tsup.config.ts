import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.shared';

// The library, plus the `ett` CLI (ESM only: it is run, not imported).
export default defineConfig([packageBuild(), { ...packageBuild({ entry: ['src/cli.ts'], format: ['esm'], dts: false }), clean: false }]);
