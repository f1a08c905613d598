import { defineConfig } from 'tsup';
import { packageBuild } from '../../tsup.shared';

// Bundle tfjs-core's gradient and chained-op registrations (see src/gradients.ts); they share the
// global kernel/gradient registries and engine with the tfjs-core the user installs.
// `shims` gives the CJS build a real import.meta.url (src/native/load.ts locates the prebuilt addon with it).
export default defineConfig(packageBuild({ noExternal: [/@tensorflow\/tfjs-core\/dist\//], shims: true }));
