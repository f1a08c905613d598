import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX, SequenceLengthError, buildCaptionSequences, buildGenerationSequences } from './sequence';

const ids = { bos: 1, eos: 2, pad: 0, boi: 3, eoi: 4 };
const I = IGNORE_INDEX;

describe('buildCaptionSequences', () => {
  it('lays out [BOS] <boi> v… <eoi> caption [EOS] pad with shifted caption-only targets', () => {
    const s = buildCaptionSequences([[10, 11], [12]], ids, 2, 64);
    // T = 2 (prefix) + 2 (visual) + 4 (<eoi> 10 11 EOS)
    expect(s.length).toBe(8);
    expect(Array.from(s.prefixIds)).toEqual([1, 3, 1, 3]);
    expect(Array.from(s.suffixIds)).toEqual([4, 10, 11, 2, 4, 12, 2, 0]);
    // positions: 0 BOS, 1 boi, 2 v1, 3 v2, 4 eoi, 5 c1, 6 c2, 7 EOS
    expect(Array.from(s.targets.slice(0, 8))).toEqual([I, I, I, I, 10, 11, 2, I]);
    expect(Array.from(s.targets.slice(8))).toEqual([I, I, I, I, 12, 2, I, I]);
    expect(Array.from(s.attentionMask)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
  });

  it('rejects a caption longer than the context, naming the sample', () => {
    expect(() => buildCaptionSequences([[5], new Array(20).fill(7)], ids, 8, 16)).toThrow(SequenceLengthError);
    expect(() => buildCaptionSequences([[5], new Array(20).fill(7)], ids, 8, 16)).toThrow(
      /sample 1: .*needs 32 positions but the context allows 16/,
    );
    expect(() => buildCaptionSequences([], ids, 8, 16)).toThrow(/empty batch/);
  });
});

describe('buildGenerationSequences', () => {
  it('left-pads prompts and targets the codes from <boi> onwards', () => {
    const s = buildGenerationSequences(
      [[20, 21], [22]],
      [
        [7, 8, 9],
        [5, 6, 4],
      ],
      ids,
      3,
      64,
    );
    expect(s.promptLength).toBe(4); // BOS 20 21 boi
    expect(s.length).toBe(6);
    expect(Array.from(s.promptIds)).toEqual([1, 20, 21, 3, 0, 1, 22, 3]);
    expect(Array.from(s.attentionMask)).toEqual([1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
    // positions 3 (boi), 4 (v1), 5 (v2) predict v1, v2, v3
    expect(Array.from(s.codeTargets)).toEqual([I, I, I, 7, 8, 9, I, I, I, 5, 6, 4]);
  });

  it('rejects mismatched code rows and over-long prompts', () => {
    expect(() => buildGenerationSequences([[1]], [[1, 2]], ids, 3, 64)).toThrow(/has 2 codes, expected 3/);
    expect(() => buildGenerationSequences([[1, 2, 3]], [[1, 2, 3]], ids, 3, 6)).toThrow(SequenceLengthError);
  });
});
