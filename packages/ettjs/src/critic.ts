import { Module } from '@ettjs/core';
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
}
