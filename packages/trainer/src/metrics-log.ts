import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { EvalRecord, StepRecord } from './checkpoint';

/**
 * The metrics log: one JSON object per line (`type: 'step'` or `'eval'`), appended with a
 * synchronous write per record, so every line written is in the file even if the process dies
 * right after. Read it with any JSONL tool (`jq`, pandas `read_json(lines=True)`).
 */
export class MetricsLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  append(record: StepRecord | EvalRecord): void {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }
}
