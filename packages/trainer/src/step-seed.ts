/**
 * Seed for one micro-step, a pure function of the run seed, the global step, the micro-step and
 * the role (generator 0, discriminator 1). Being stateless, it needs no RNG state in the checkpoint
 * beyond the run seed, and a resumed run draws exactly what an uninterrupted one would.
 * The mixing is splitmix32-style (Math.imul avalanche), giving a non-negative int32.
 */
export function stepSeed(runSeed: number, step: number, microStep: number, role: 0 | 1): number {
  let h = (runSeed | 0) ^ 0x9e3779b9;
  for (const v of [step, microStep, role]) {
    h = Math.imul(h ^ (v | 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 1;
}
