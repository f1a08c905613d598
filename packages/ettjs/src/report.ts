import fs from 'node:fs';
import path from 'node:path';

/**
 * A self-contained HTML run report: loss curves per component, image grids, the codebook-usage
 * histogram and the results table. Images are embedded as data URLs and also written as PNG files
 * next to the HTML, so the report opens offline and the grids can be used on their own.
 */

/** One metrics-log record (a line of the trainer's JSONL log). */
export interface MetricRecord {
  step: number;
  stage?: string;
  [key: string]: unknown;
}

export interface ReportImage {
  /** File name for the PNG, e.g. `reconstructions.png`. */
  file: string;
  title: string;
  caption?: string;
  png: Uint8Array;
}

export interface ReportTable {
  title: string;
  columns: string[];
  rows: (string | number)[][];
  note?: string;
}

export interface ReportData {
  title: string;
  subtitle?: string;
  metrics: MetricRecord[];
  images?: ReportImage[];
  /** Code index → how often it was selected on the evaluation set. */
  codeUsage?: { title: string; counts: number[] }[];
  tables?: ReportTable[];
  notes?: string[];
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (x: number) => (Math.abs(x) >= 1000 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toPrecision(4));

/** Numeric series per metric name over steps (one per stage prefix when stages differ). */
export function metricSeries(metrics: readonly MetricRecord[]): Map<string, [number, number][]> {
  const skip = new Set(['step', 'stage', 'stageStep', 'stepMs', 'numTensors', 'type']);
  const series = new Map<string, [number, number][]>();
  let offset = 0;
  let lastStage: string | undefined;
  let lastStep = 0;
  for (const r of metrics) {
    // Stages restart their step count: lay them end to end on one axis.
    if (r.stage !== lastStage && lastStage !== undefined) offset += lastStep + 1;
    lastStage = r.stage;
    lastStep = r.step;
    // Nested records (the trainer's `loss: {total, caption, …}`) become `loss.caption`, ….
    const flat = Object.entries(r).flatMap(([k, v]) =>
      v !== null && typeof v === 'object' && !Array.isArray(v)
        ? Object.entries(v as Record<string, unknown>).map(([k2, v2]) => [`${k}.${k2}`, v2] as const)
        : [[k, v] as const],
    );
    for (const [k, v] of flat) {
      if (skip.has(k) || typeof v !== 'number' || !Number.isFinite(v)) continue;
      if (!series.has(k)) series.set(k, []);
      series.get(k)!.push([offset + r.step, v]);
    }
  }
  return series;
}

/** An SVG line chart of one series. */
export function lineChart(title: string, points: readonly [number, number][], width = 320, height = 180): string {
  const pad = { l: 48, r: 10, t: 22, b: 24 };
  if (points.length === 0) return '';
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const sx = (x: number) => pad.l + ((x - x0) / Math.max(x1 - x0, 1e-9)) * (width - pad.l - pad.r);
  const sy = (y: number) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(title)}">
<text x="${width / 2}" y="14" text-anchor="middle" class="t">${escapeHtml(title)}</text>
<line x1="${pad.l}" y1="${height - pad.b}" x2="${width - pad.r}" y2="${height - pad.b}" class="ax"/>
<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${height - pad.b}" class="ax"/>
<text x="${pad.l - 4}" y="${pad.t + 4}" text-anchor="end">${fmt(y1)}</text>
<text x="${pad.l - 4}" y="${height - pad.b}" text-anchor="end">${fmt(y0)}</text>
<text x="${pad.l}" y="${height - 6}">${x0}</text><text x="${width - pad.r}" y="${height - 6}" text-anchor="end">${x1}</text>
<path d="${d}" class="line"/></svg>`;
}

/** An SVG bar chart of code-usage counts, codes sorted by frequency (the usual usage plot). */
export function usageHistogram(title: string, counts: readonly number[], width = 660, height = 180): string {
  const sorted = [...counts].sort((a, b) => b - a);
  const max = Math.max(1, sorted[0] ?? 1);
  const used = counts.filter((c) => c > 0).length;
  const bw = (width - 20) / Math.max(sorted.length, 1);
  const bars = sorted
    .map((c, i) => {
      const h = (c / max) * (height - 40);
      return `<rect x="${(10 + i * bw).toFixed(2)}" y="${(height - 20 - h).toFixed(2)}" width="${Math.max(bw, 0.5).toFixed(2)}" height="${h.toFixed(2)}"/>`;
    })
    .join('');
  const label = `${title}: ${used}/${counts.length} codes used`;
  return `<svg class="chart hist" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(label)}">
<text x="${width / 2}" y="14" text-anchor="middle" class="t">${escapeHtml(label)}</text>${bars}
<text x="10" y="${height - 4}">most used</text><text x="${width - 10}" y="${height - 4}" text-anchor="end">least used</text></svg>`;
}

function table(t: ReportTable): string {
  const head = t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const body = t.rows
    .map((r) => `<tr>${r.map((v) => `<td>${escapeHtml(typeof v === 'number' ? fmt(v) : v)}</td>`).join('')}</tr>`)
    .join('\n');
  return `<h2>${escapeHtml(t.title)}</h2><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>${t.note ? `<p class="note">${escapeHtml(t.note)}</p>` : ''}`;
}

/** Renders the report as one HTML string. */
export function renderReport(data: ReportData): string {
  const charts = [...metricSeries(data.metrics)].map(([name, pts]) => lineChart(name, pts)).join('\n');
  const images = (data.images ?? [])
    .map(
      (im) =>
        `<figure><img alt="${escapeHtml(im.title)}" src="data:image/png;base64,${Buffer.from(im.png).toString('base64')}"/><figcaption><b>${escapeHtml(im.title)}</b>${im.caption ? ` — ${escapeHtml(im.caption)}` : ''} (<a href="${escapeHtml(im.file)}">${escapeHtml(im.file)}</a>)</figcaption></figure>`,
    )
    .join('\n');
  const hists = (data.codeUsage ?? []).map((u) => usageHistogram(u.title, u.counts)).join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(data.title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}h1{margin-bottom:0}
.sub{color:#666}.charts{display:flex;flex-wrap:wrap;gap:8px}.chart{background:#fafafa;border:1px solid #ddd}
.chart text{font-size:10px;fill:#444}.chart .t{font-size:12px;fill:#000}.ax{stroke:#999}.line{fill:none;stroke:#1f6feb;stroke-width:1.5}
.hist rect{fill:#1f6feb}figure{display:inline-block;margin:8px}img{image-rendering:pixelated;width:512px;border:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}.note{color:#555}</style></head><body>
<h1>${escapeHtml(data.title)}</h1>${data.subtitle ? `<p class="sub">${escapeHtml(data.subtitle)}</p>` : ''}
${(data.tables ?? []).map(table).join('\n')}
${(data.notes ?? []).map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n')}
${images ? `<h2>Images</h2>${images}` : ''}
${hists ? `<h2>Codebook usage</h2>${hists}` : ''}
<h2>Training curves</h2><div class="charts">${charts || '<p>No metrics recorded.</p>'}</div>
</body></html>`;
}

/** Writes `report.html` and the PNG files into `dir`; returns the HTML path. */
export function writeReport(dir: string, data: ReportData): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const im of data.images ?? []) fs.writeFileSync(path.join(dir, im.file), im.png);
  const file = path.join(dir, 'report.html');
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, renderReport(data));
  fs.renameSync(tmp, file);
  return file;
}

/** Reads a trainer metrics log (JSON lines), skipping a torn last line from a crash. */
export function readMetricsLog(file: string): MetricRecord[] {
  const out: MetricRecord[] = [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(JSON.parse(line));
    } catch {
      if (i < lines.length - 2) throw new Error(`${file}:${i + 1}: not valid JSON; the metrics log is corrupt`);
    }
  });
  return out;
}
