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
  /** Accuracy over training steps, one chart per field, each arm a line, chance dashed. */
  accuracyCurves?: AccuracyCurve[];
  /** Shown in a highlighted box under the title (e.g. an arm that ended at chance). */
  warnings?: string[];
}

/** One field's accuracy over steps for several runs (arms), with the field's chance level. */
export interface AccuracyCurve {
  title: string;
  /** Accuracy a model that ignores the image reaches, in [0, 1]. */
  chance: number;
  series: { name: string; points: [number, number][] }[];
}

/** Line colours of `accuracyChart`'s series, in order (distinct under the common colour blindnesses). */
const SERIES_COLOURS = ['#1f6feb', '#d1242f', '#1a7f37', '#8250df', '#bf8700', '#57606a'];

/**
 * An SVG chart of accuracies in [0, 1] over steps: one line per series on a fixed 0–100 % axis, a
 * dashed line at `chance`, and a legend, so arms are compared on the same scale.
 */
export function accuracyChart(curve: AccuracyCurve, width = 320, height = 200): string {
  const pad = { l: 40, r: 10, t: 22, b: 38 };
  const xs = curve.series.flatMap((s) => s.points.map((p) => p[0]));
  if (xs.length === 0) return '';
  const [x0, x1] = [Math.min(0, ...xs), Math.max(...xs)];
  const sx = (x: number) => pad.l + ((x - x0) / Math.max(x1 - x0, 1e-9)) * (width - pad.l - pad.r);
  const sy = (y: number) => height - pad.b - Math.min(1, Math.max(0, y)) * (height - pad.t - pad.b);
  const lines = curve.series
    .map((s, i) => {
      const colour = SERIES_COLOURS[i % SERIES_COLOURS.length];
      const d = s.points
        .map((p, j) => `${j === 0 ? 'M' : 'L'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}${s.points.length === 1 ? 'h0' : ''}`)
        .join('');
      return `<path d="${d}" class="acc" stroke="${colour}"><title>${escapeHtml(s.name)}</title></path>`;
    })
    .join('');
  const legend = curve.series
    .map((s, i) => {
      const x = pad.l + i * 96;
      return `<rect x="${x}" y="${height - 12}" width="10" height="3" fill="${SERIES_COLOURS[i % SERIES_COLOURS.length]}"/><text x="${x + 14}" y="${height - 8}">${escapeHtml(s.name)}</text>`;
    })
    .join('');
  const cy = sy(curve.chance).toFixed(1);
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(curve.title)}">
<text x="${width / 2}" y="14" text-anchor="middle" class="t">${escapeHtml(curve.title)}</text>
<line x1="${pad.l}" y1="${height - pad.b}" x2="${width - pad.r}" y2="${height - pad.b}" class="ax"/>
<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${height - pad.b}" class="ax"/>
<line x1="${pad.l}" y1="${cy}" x2="${width - pad.r}" y2="${cy}" class="chance"><title>chance ${(100 * curve.chance).toFixed(1)}%</title></line>
<text x="${width - pad.r}" y="${Number(cy) - 3}" text-anchor="end">chance ${(100 * curve.chance).toFixed(1)}%</text>
<text x="${pad.l - 4}" y="${pad.t + 4}" text-anchor="end">100%</text><text x="${pad.l - 4}" y="${height - pad.b}" text-anchor="end">0%</text>
<text x="${pad.l}" y="${height - pad.b + 12}">${x0}</text><text x="${width - pad.r}" y="${height - pad.b + 12}" text-anchor="end">${x1}</text>
${lines}${legend}</svg>`;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (x: number) => (Math.abs(x) >= 1000 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toPrecision(4));
/** Axis labels: 3 significant digits without trailing zeros, so `0.002` fits the chart's left margin. */
const axisFmt = (x: number) =>
  Math.abs(x) >= 1e5 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(1).replace('e+', 'e') : String(Number(x.toPrecision(3)));

/** Where each stage starts and ends on the shared step axis of `metricSeries`. */
export function stageSpans(metrics: readonly MetricRecord[]): { stage: string; start: number; end: number }[] {
  const spans: { stage: string; start: number; end: number }[] = [];
  let offset = 0;
  let lastStage: string | undefined;
  let lastStep = 0;
  for (const r of metrics) {
    if (r.stage !== lastStage && lastStage !== undefined) offset += lastStep + 1;
    if (spans.length === 0 || r.stage !== lastStage) spans.push({ stage: r.stage ?? '', start: offset + r.step, end: offset + r.step });
    lastStage = r.stage;
    lastStep = r.step;
    spans[spans.length - 1].end = offset + r.step;
  }
  return spans;
}

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

/**
 * An SVG line chart of one series. `stages` (from `stageSpans`) draws a dashed line where each
 * stage after the first begins, so a jump in a curve that spans stages reads as a stage change.
 */
export function lineChart(
  title: string,
  points: readonly [number, number][],
  width = 320,
  height = 180,
  stages: readonly { stage: string; start: number; end: number }[] = [],
): string {
  const pad = { l: 48, r: 10, t: 22, b: 24 };
  if (points.length === 0) return '';
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const sx = (x: number) => pad.l + ((x - x0) / Math.max(x1 - x0, 1e-9)) * (width - pad.l - pad.r);
  const sy = (y: number) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  const bounds = stages.slice(1).map((s, i) => ({ stage: s.stage, at: (stages[i].end + s.start) / 2 }));
  // A new subpath after each stage boundary: a straight line bridging two stages (or a stage that
  // does not log this metric) would draw a trend that never happened.
  const cuts = points.map((p, i) => i === 0 || bounds.some((b) => points[i - 1][0] < b.at && b.at < p[0]));
  const d = points
    .map((p, i) => {
      const alone = cuts[i] && (i === points.length - 1 || cuts[i + 1]); // drawn as a dot (round caps)
      return `${cuts[i] ? 'M' : 'L'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}${alone ? 'h0' : ''}`;
    })
    .join('');
  const marks = bounds
    .filter((s) => s.at > x0 && s.at < x1)
    .map((s) => {
      const x = sx(s.at).toFixed(1);
      return `<line x1="${x}" y1="${pad.t}" x2="${x}" y2="${height - pad.b}" class="stage"><title>${escapeHtml(s.stage)}</title></line>`;
    })
    .join('');
  return `<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(title)}">
<text x="${width / 2}" y="14" text-anchor="middle" class="t">${escapeHtml(title)}</text>
<line x1="${pad.l}" y1="${height - pad.b}" x2="${width - pad.r}" y2="${height - pad.b}" class="ax"/>
<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${height - pad.b}" class="ax"/>${marks}
<text x="${pad.l - 4}" y="${pad.t + 4}" text-anchor="end">${axisFmt(y1)}</text>
<text x="${pad.l - 4}" y="${height - pad.b}" text-anchor="end">${axisFmt(y0)}</text>
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
  // A column of whole numbers above 1 holds counts (samples, steps): print them as integers. Any
  // other number gets 4 significant digits, so an accuracy of 0 or 1 still reads 0.000 / 1.000.
  const counts = t.columns.map((_, j) => {
    const nums = t.rows.map((r) => r[j]).filter((v): v is number => typeof v === 'number');
    return nums.length > 0 && nums.every((v) => Number.isInteger(v)) && nums.some((v) => Math.abs(v) > 1);
  });
  // Numbers right-aligned so digits line up; text left-aligned so it reads.
  const cell = (v: string | number, j: number) =>
    typeof v === 'number' ? `<td class="num">${escapeHtml(counts[j] ? String(v) : fmt(v))}</td>` : `<td>${escapeHtml(v)}</td>`;
  const body = t.rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('\n');
  return `<h2>${escapeHtml(t.title)}</h2><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>${t.note ? `<p class="note">${escapeHtml(t.note)}</p>` : ''}`;
}

/** Width and height from a PNG's IHDR chunk, or null for anything else. */
function pngSize(png: Uint8Array): [number, number] | null {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (png.length < 24 || sig.some((b, i) => png[i] !== b)) return null;
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return [v.getUint32(16), v.getUint32(20)];
}

/** Widest an image is drawn, in CSS px (the page is 1100 px wide at most). */
const IMAGE_MAX_WIDTH = 1024;

function figure(im: ReportImage): string {
  // Tiny pixel grids are enlarged by a whole factor so every image pixel stays a crisp square
  // (a fixed CSS width scales a 266-px grid by 1.92 and makes pixel rows uneven).
  const size = pngSize(im.png);
  const scale = size ? Math.max(1, Math.min(4, Math.floor(IMAGE_MAX_WIDTH / size[0]))) : 1;
  const dims = size ? ` width="${size[0] * scale}" height="${size[1] * scale}"` : '';
  return `<figure><img alt="${escapeHtml(im.title)}"${dims} src="data:image/png;base64,${Buffer.from(im.png).toString('base64')}"/><figcaption><b>${escapeHtml(im.title)}</b>${im.caption ? ` — ${escapeHtml(im.caption)}` : ''} (<a href="${escapeHtml(im.file)}">${escapeHtml(im.file)}</a>)</figcaption></figure>`;
}

/** Renders the report as one HTML string. */
export function renderReport(data: ReportData): string {
  const stages = stageSpans(data.metrics);
  const charts = [...metricSeries(data.metrics)].map(([name, pts]) => lineChart(name, pts, 320, 180, stages)).join('\n');
  const images = (data.images ?? []).map(figure).join('\n');
  const legend =
    stages.length > 1
      ? `<p class="note">Stages run end to end on one step axis; dashed lines mark where each begins: ${stages
          .map((s) => `${escapeHtml(s.stage)} (step ${s.start})`)
          .join(', ')}.</p>`
      : '';
  const hists = (data.codeUsage ?? []).map((u) => usageHistogram(u.title, u.counts)).join('\n');
  const accuracy = (data.accuracyCurves ?? []).map((c) => accuracyChart(c)).join('\n');
  const warnings = (data.warnings ?? []).map((w) => `<p class="warn">${escapeHtml(w)}</p>`).join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(data.title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}h1{margin-bottom:0}
.sub{color:#666}.charts{display:flex;flex-wrap:wrap;gap:8px}.chart{background:#fafafa;border:1px solid #ddd}
.chart text{font-size:10px;fill:#444}.chart .t{font-size:12px;fill:#000}.ax{stroke:#999}.line{fill:none;stroke:#1f6feb;stroke-width:1.5;stroke-linecap:round}
.hist rect{fill:#1f6feb}.acc{fill:none;stroke-width:1.5;stroke-linecap:round}.chance{stroke:#888;stroke-dasharray:4 3}
.warn{background:#fff4e5;border:1px solid #d29922;padding:8px 12px;margin:12px 0}.stage{stroke:#d29922;stroke-dasharray:3 3}figure{display:block;margin:8px 0}figcaption{max-width:1024px}
img{image-rendering:pixelated;max-width:100%;height:auto;border:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums}.note{color:#555}</style></head><body>
<h1>${escapeHtml(data.title)}</h1>${data.subtitle ? `<p class="sub">${escapeHtml(data.subtitle)}</p>` : ''}
${warnings}
${(data.tables ?? []).map(table).join('\n')}
${(data.notes ?? []).map((n) => `<p class="note">${escapeHtml(n)}</p>`).join('\n')}
${images ? `<h2>Images</h2>${images}` : ''}
${accuracy ? `<h2>Caption accuracy during training</h2><p class="note">Greedy captions of held-out images at the steps shown; the dashed line is chance.</p><div class="charts">${accuracy}</div>` : ''}
${hists ? `<h2>Codebook usage</h2>${hists}` : ''}
<h2>Training curves</h2>${legend}<div class="charts">${charts || '<p>No metrics recorded.</p>'}</div>
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
