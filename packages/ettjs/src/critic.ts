import { Module } from '@ettjs/core';
import type * as tf from '@tensorflow/tfjs-core';
import { LecamEma, type LecamOptions, PatchDiscriminator, type PatchDiscriminatorConfig } from '@ettjs/losses';

/**
 * The adversarial half of `L_vq`: IBQ's PatchGAN discriminator and the LeCAM anchors it is
 * regularised with, as one module so a checkpoint carries both (`discriminator.disc.*`,
 * `discriminator.lecam.*`).
 */
export class GanCritic extends Module {
  readonly disc: PatchDiscriminator;
  readonly lecam: LecamEma;

  constructor(config: Partial<PatchDiscriminatorConfig> = {}, lecam: LecamOptions = {}) {
    super();
    this.disc = this.addModule('disc', new PatchDiscriminator(config));
    this.lecam = this.addModule('lecam', new LecamEma(lecam));
  }

  #pending: [tf.Scalar, tf.Scalar] | null = null;

  /**
   * Holds the critic step's mean logits (real, fake) until the LeCAM anchors are committed after
   * the step; takes ownership and frees what an unfinished step left.
   */
  holdLogits(real: tf.Scalar, fake: tf.Scalar): void {
    this.#dropLogits();
    this.#pending = [real, fake];
  }

  /** Updates the LeCAM anchors from the held logits, if any, and frees them. */
  commitLogits(): void {
    if (this.#pending) this.lecam.update(this.#pending[0], this.#pending[1]);
    this.#dropLogits();
  }

  #dropLogits(): void {
    if (this.#pending) for (const t of this.#pending) t.dispose();
    this.#pending = null;
  }

  override dispose(): void {
    this.#dropLogits();
    super.dispose();
  }
}
