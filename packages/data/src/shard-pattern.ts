import { existsSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * Shard lists the way WebDataset corpora name them: brace patterns (`shards-{000000..000099}.tar`,
 * `{train,extra}-{0..3}.tar`, zero padding kept from the first bound) and globs (`*`, `?` and
 * `[abc]` within a path component; no `**`). Brace expansion runs first; each expanded pattern
 * with wildcards is matched against the file system, one without is taken as a path that must exist.
 */

/** Expands `{a,b}` lists and `{0..9}` numeric ranges, left to right, in order. */
export function expandBraces(pattern: string): string[] {
  const open = pattern.indexOf('{');
  if (open < 0) return [pattern];
  let depth = 0;
  let close = -1;
  for (let i = open; i < pattern.length; i++) {
    if (pattern[i] === '{') depth++;
    else if (pattern[i] === '}' && --depth === 0) {
      close = i;
      break;
    }
  }
  if (close < 0) throw new Error(`shard pattern ${pattern}: unmatched '{'`);
  const body = pattern.slice(open + 1, close);
  const head = pattern.slice(0, open);
  const tails = expandBraces(pattern.slice(close + 1));
  const range = /^(-?\d+)\.\.(-?\d+)$/.exec(body);
  let options: string[];
  if (range) {
    const [a, b] = [range[1]!, range[2]!];
    const lo = Number.parseInt(a, 10);
    const hi = Number.parseInt(b, 10);
    const width = a.length > 1 && a.startsWith('0') ? a.length : 0;
    const step = lo <= hi ? 1 : -1;
    if (Math.abs(hi - lo) > 10_000_000) throw new Error(`shard pattern ${pattern}: range {${body}} is too large`);
    options = [];
    for (let v = lo; step > 0 ? v <= hi : v >= hi; v += step) options.push(String(v).padStart(width, '0'));
  } else {
    // Split on top-level commas only, so nested braces expand recursively.
    options = [];
    let d = 0;
    let start = 0;
    for (let i = 0; i <= body.length; i++) {
      const ch = body[i];
      if (ch === '{') d++;
      else if (ch === '}') d--;
      else if ((ch === ',' && d === 0) || i === body.length) {
        options.push(...expandBraces(body.slice(start, i)));
        start = i + 1;
      }
    }
  }
  const out: string[] = [];
  for (const o of options) for (const t of tails) out.push(head + o + t);
  return out;
}

function globToRegExp(component: string): RegExp {
  let re = '';
  for (let i = 0; i < component.length; i++) {
    const ch = component[i]!;
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = component.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const set = component.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${set.startsWith('!') ? `^${set.slice(1)}` : set}]`;
        i = end;
      }
    } else re += ch.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const hasWildcard = (s: string) => /[*?[]/.test(s);

function glob(pattern: string, cwd: string): string[] {
  if (pattern.includes('**')) throw new Error(`shard pattern ${pattern}: '**' is not supported; name the directory levels`);
  const parts = pattern.split('/').filter((p) => p !== '' && p !== '.');
  let bases = [isAbsolute(pattern) ? '/' : resolve(cwd)];
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1;
    const re = hasWildcard(part) ? globToRegExp(part) : null;
    const next: string[] = [];
    for (const base of bases) {
      let names = [part];
      if (re) {
        try {
          names = readdirSync(base)
            .filter((n) => re.test(n) && !n.startsWith('.'))
            .sort();
        } catch {
          names = [];
        }
      }
      for (const n of names) {
        const full = join(base, n);
        if (existsSync(full) && (last || statSync(full).isDirectory())) next.push(full);
      }
    }
    bases = next;
  }
  return bases;
}

/**
 * The shard files of a pattern, in pattern order (brace order, then sorted glob matches).
 * Relative patterns resolve against `cwd` (default `process.cwd()`). Throws when a plain path is
 * missing or nothing matches.
 */
export function expandShards(pattern: string, cwd = process.cwd()): string[] {
  const out: string[] = [];
  for (const p of expandBraces(pattern)) {
    if (hasWildcard(p)) out.push(...glob(p, cwd));
    else {
      const full = resolve(cwd, p);
      if (!existsSync(full)) throw new Error(`shard ${full} (from pattern ${pattern}) does not exist`);
      out.push(full);
    }
  }
  return out;
}
