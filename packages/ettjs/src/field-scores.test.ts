import { DEFAULT_SYNTHETIC_CONFIG } from '@ettjs/data';
import { describe, expect, it } from 'vitest';
import { chanceLevels, compareFields, describeArmDifference, fieldsAtChance, isAtChance } from './field-scores';

const report = (
  o: Partial<Record<'shape' | 'colour' | 'position' | 'textExact' | 'textChar' | 'psnr' | 'usage', number>>,
  samples = 100,
) => ({
  shape: 0,
  colour: 0,
  position: 0,
  textExact: 0,
  textChar: 0,
  psnr: 20,
  usage: 0.5,
  samples,
  ...o,
});

describe('chance levels', () => {
  it('is one over the number of values of each field', () => {
    const c = chanceLevels(DEFAULT_SYNTHETIC_CONFIG);
    expect(c.shape).toBeCloseTo(1 / 4, 12);
    expect(c.colour).toBeCloseTo(1 / 6, 12);
    expect(c.position).toBeCloseTo(1 / 5, 12);
    expect(c.textChar).toBeCloseTo(1 / 36, 12); // A–Z0–9
    expect(c.textExact).toBeCloseTo(1 / 36 ** 2, 12); // two characters
  });

  it('counts every string length for exact text, and follows restricted value sets', () => {
    const c = chanceLevels({ ...DEFAULT_SYNTHETIC_CONFIG, textLength: [2, 3], charset: 'AB', colours: ['red', 'blue'] });
    expect(c.textExact).toBeCloseTo(1 / (4 + 8), 12);
    expect(c.textChar).toBeCloseTo(1 / 2, 12);
    expect(c.colour).toBeCloseTo(1 / 2, 12);
  });
});

describe('at chance', () => {
  it('allows 2.33 binomial standard errors above chance', () => {
    // se = sqrt(0.25 · 0.75 / 100) = 0.0433; the bound is 0.25 + 2.33 · 0.0433 = 0.3509
    expect(isAtChance(0.25, 0.25, 100)).toBe(true);
    expect(isAtChance(0.35, 0.25, 100)).toBe(true);
    expect(isAtChance(0.36, 0.25, 100)).toBe(false);
    expect(isAtChance(0.1, 0.25, 100)).toBe(true); // below chance is still no learning
  });

  it('names the fields at chance, leaving exact text out', () => {
    const chance = chanceLevels(DEFAULT_SYNTHETIC_CONFIG);
    expect(fieldsAtChance({ shape: 0.9, colour: 0.2, position: 0.95, textExact: 0, textChar: 0.03 }, chance, 256)).toEqual([
      'colour',
      'textChar',
    ]);
  });
});

describe('arm differences', () => {
  it('marks a difference clear beyond two standard errors', () => {
    // shape 0.5 -> 0.7 on 100 samples: 2 · sqrt((0.25 + 0.21) / 100) = 13.56 points of noise
    const d = compareFields(report({ shape: 0.5 }), report({ shape: 0.7 }), 100);
    expect(d[0].field).toBe('shape');
    expect(d[0].points).toBeCloseTo(20, 10);
    expect(d[0].noise).toBeCloseTo(200 * Math.sqrt(0.46 / 100), 10);
    expect(d[0].clear).toBe(true);
    expect(compareFields(report({ shape: 0.5 }), report({ shape: 0.6 }), 100)[0].clear).toBe(false);
  });

  it('says so when nothing moved beyond noise', () => {
    const line = describeArmDifference(report({ shape: 0.9, psnr: 20 }), report({ shape: 0.92, psnr: 21.5, usage: 0.6 }), {
      frozen: 'frozen-embedding',
      tuned: 'ett',
    });
    expect(line).toContain('ett vs frozen-embedding (100 samples');
    expect(line).toContain('shape +2.0~');
    expect(line).toContain('PSNR +1.50 dB');
    expect(line).toContain('code usage +10.0 points');
    expect(line).toMatch(/no caption field differs beyond noise$/);
  });

  it('names the fields that moved, with their direction', () => {
    const line = describeArmDifference(report({ textChar: 0.2, colour: 0.9 }), report({ textChar: 0.6, colour: 0.6 }), {
      frozen: 'f',
      tuned: 't',
    });
    expect(line).toContain('text chars +40.0;');
    expect(line).toContain('colour −30.0,');
    expect(line).toMatch(/beyond noise: colour worse, text chars better$/);
  });
});
