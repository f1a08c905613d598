// Builds the native kernels (native/ettjs_native.cc) into prebuilds/<platform>-<arch>/, once per
// instruction set. The .node files are committed and published, so installing @ettjs/backend never
// compiles anything; run this only after changing the C++ (needs g++, Node's headers and Eigen 3.4:
// `apt-get install g++ libeigen3-dev`).
//
//   node native/build.mjs            # both variants
//   EIGEN_INCLUDE=/path/to/eigen3 NODE_INCLUDE=/path/to/include/node node native/build.mjs
//
// Built on Debian 12 the files need glibc >= 2.34 and a CPU with AVX2+FMA (avx2) or AVX-512 (avx512);
// libstdc++ is linked statically. The loader (src/native/load.ts) picks the variant the CPU supports.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const source = path.join(here, 'ettjs_native.cc');
const outDir = path.join(here, '..', 'prebuilds', `${process.platform}-${process.arch}`);

const nodeInclude = [
  process.env.NODE_INCLUDE,
  path.join(path.dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
].find((dir) => dir != null && fs.existsSync(path.join(dir, 'node_api.h')));
const eigenInclude = [process.env.EIGEN_INCLUDE, '/usr/include/eigen3'].find(
  (dir) => dir != null && fs.existsSync(path.join(dir, 'Eigen', 'Core')),
);
if (nodeInclude == null) throw new Error('node_api.h not found: set NODE_INCLUDE to the include/node directory of your Node.js.');
if (eigenInclude == null) throw new Error('Eigen not found: apt-get install libeigen3-dev, or set EIGEN_INCLUDE.');
if (process.platform !== 'linux' || process.arch !== 'x64')
  throw new Error(`only linux-x64 builds are set up (this is ${process.platform}-${process.arch})`);

const variants = [
  { isa: 'avx2', march: 'x86-64-v3' },
  { isa: 'avx512', march: 'x86-64-v4' },
];
fs.mkdirSync(outDir, { recursive: true });
for (const { isa, march } of variants) {
  const out = path.join(outDir, `ettjs-native.${isa}.node`);
  const args = [
    '-O3',
    // sqrt without errno: IEEE sqrt either way, but with errno GCC keeps a scalar sqrt (and a libm
    // call for negative inputs) in every loop that has one, so the AdamW update did not vectorize.
    '-fno-math-errno',
    // Nothing here traps on FP exceptions (denormals are flushed, NaN/inf handled by value), and with
    // trapping math GCC will not compute both sides of a select on AVX2 (no masked ops there), so
    // LeakyReLU, exp and SiLU loops stayed scalar in the AVX2 build.
    '-fno-trapping-math',
    '-std=c++17',
    `-march=${march}`,
    '-mtune=generic',
    '-shared',
    '-fPIC',
    '-fvisibility=hidden',
    '-pthread',
    '-static-libstdc++',
    '-static-libgcc',
    '-DNDEBUG',
    `-DETTJS_ISA="${isa}"`,
    '-DNODE_GYP_MODULE_NAME=ettjs_native',
    `-I${nodeInclude}`,
    `-I${eigenInclude}`,
    source,
    '-o',
    out,
    '-s',
  ];
  console.log(`g++ ${args.join(' ')}`);
  execFileSync('g++', args, { stdio: 'inherit' });
  console.log(`${out}: ${(fs.statSync(out).size / 1024).toFixed(0)} KB`);
}
