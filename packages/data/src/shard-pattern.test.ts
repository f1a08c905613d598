import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/helpers';
import { expandBraces, expandShards } from './shard-pattern';

const t = tempDir();
afterAll(t.cleanup);

describe('shard patterns', () => {
  it('expands brace lists and zero-padded ranges in order', () => {
    expect(expandBraces('s-{000..002}.tar')).toEqual(['s-000.tar', 's-001.tar', 's-002.tar']);
    expect(expandBraces('{a,b}-{8..10}')).toEqual(['a-8', 'a-9', 'a-10', 'b-8', 'b-9', 'b-10']);
    expect(expandBraces('x{1,{y,z}}')).toEqual(['x1', 'xy', 'xz']);
    expect(expandBraces('{3..1}')).toEqual(['3', '2', '1']);
    expect(expandBraces('plain.tar')).toEqual(['plain.tar']);
    expect(() => expandBraces('a{b')).toThrow(/unmatched/);
  });

  it('globs within path components, sorted, relative to cwd', () => {
    mkdirSync(join(t.dir, 'd1'));
    mkdirSync(join(t.dir, 'd2'));
    for (const f of ['d1/s-1.tar', 'd1/s-0.tar', 'd2/s-5.tar', 'd2/x.txt', 'd1/.hidden.tar']) writeFileSync(join(t.dir, f), '');
    expect(expandShards('d*/s-?.tar', t.dir)).toEqual(['d1/s-0.tar', 'd1/s-1.tar', 'd2/s-5.tar'].map((f) => join(t.dir, f)));
    expect(expandShards(`${t.dir}/d2/*.tar`)).toEqual([join(t.dir, 'd2/s-5.tar')]);
    expect(expandShards('d{2,1}/s-[01].tar', t.dir)).toEqual(['d1/s-0.tar', 'd1/s-1.tar'].map((f) => join(t.dir, f)));
    expect(expandShards('nothing-*.tar', t.dir)).toEqual([]);
    expect(() => expandShards('d1/s-{0..2}.tar', t.dir)).toThrow(/d1\/s-2\.tar \(from pattern d1\/s-\{0\.\.2\}\.tar\) does not exist/);
    expect(() => expandShards('**/*.tar', t.dir)).toThrow(/'\*\*' is not supported/);
  });
});
