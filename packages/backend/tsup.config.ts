import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.shared';

// Bundle tfjs-core's gradient and chained-op registrations (see src/gradients.ts); they share the
// global kernel/gradient registries and engine with the tfjs-core the user installs.
export default defineConfig(packageBuild({ noExternal: [/@tensorflow\/tfjs-core\/dist\//] }));
