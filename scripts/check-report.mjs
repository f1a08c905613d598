#!/usr/bin/env node
// Checks an ETT.js HTML run report in a real headless browser (issue #9): the page loads, every
// <img> decodes to a non-zero size, the SVG charts are there and drawn, the results table is there,
// and nothing is logged as an error. It opens a *copy* of report.html in a temporary directory, so
// it also proves the report is self-contained (the images are data URLs, nothing is fetched).
//
//   node scripts/check-report.mjs runs/quickstart                 # or a path to report.html
//   node scripts/check-report.mjs runs/quickstart --screenshot /tmp/report.png
//   node scripts/check-report.mjs runs/quickstart --if-available  # exit 0 with a note when there is no chromium
//
// Chromium comes from Debian (`apt-get install chromium`); set CHROMIUM to use another binary.
// Exit codes: 0 all checks passed (or skipped with --if-available), 1 a check failed or chromium is
// missing, 2 a usage mistake.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = 'usage: node scripts/check-report.mjs <run dir | report.html> [--screenshot FILE.png] [--width 1200] [--if-available]';

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      screenshot: { type: 'string' },
      width: { type: 'string', default: '1200' },
      'if-available': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
} catch (e) {
  console.error(`${e.message}\n${USAGE}`);
  process.exit(2);
}
if (args.values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (args.positionals.length !== 1) {
  console.error(USAGE);
  process.exit(2);
}
const width = Number(args.values.width);
if (!Number.isInteger(width) || width < 320) {
  console.error(`--width must be an integer >= 320, got ${args.values.width}`);
  process.exit(2);
}

const target = path.resolve(args.positionals[0]);
const report = fs.existsSync(target) && fs.statSync(target).isDirectory() ? path.join(target, 'report.html') : target;
if (!fs.existsSync(report)) {
  console.error(`no report at ${report}: train a run first (npx ett train --out DIR) or pass the path of a report.html`);
  process.exit(1);
}

/** The first chromium-like binary on PATH (or $CHROMIUM). */
function findChromium() {
  const candidates = [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'].filter(Boolean);
  for (const c of candidates) {
    if (c.includes('/')) {
      if (fs.existsSync(c)) return c;
      continue;
    }
    for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
      const f = path.join(dir, c);
      if (dir && fs.existsSync(f)) return f;
    }
  }
  return null;
}

const chromium = findChromium();
if (!chromium) {
  if (args.values['if-available']) {
    console.log('check-report: skipped, chromium not found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)');
    process.exit(0);
  }
  console.error('chromium not found: apt-get install chromium (or set CHROMIUM=/path/to/chrome)');
  process.exit(1);
}

// Runs first, in <head>: records every console error/warning, uncaught error and failed resource.
const PROBE_HEAD = `<script>(() => {
  const log = (window.__ettCheck = { console: [], errors: [] });
  for (const level of ['error', 'warn']) {
    const orig = console[level].bind(console);
    console[level] = (...a) => { log.console.push(level + ': ' + a.map(String).join(' ')); orig(...a); };
  }
  window.addEventListener('error', (e) => {
    const t = e.target;
    if (t && t !== window && (t.src || t.href)) log.errors.push('failed to load ' + (t.tagName || '').toLowerCase() + ' ' + String(t.src || t.href).slice(0, 80));
    else log.errors.push('uncaught: ' + (e.message || String(e.error)));
  }, true);
  window.addEventListener('unhandledrejection', (e) => log.errors.push('unhandled rejection: ' + String(e.reason)));
})();</script>`;

// Runs after load: measures what the browser actually made of the page and writes it into the DOM.
const PROBE_BODY = `<script>window.addEventListener('load', () => {
  const box = (el) => { const r = el.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  const out = {
    title: document.title,
    h1: document.querySelector('h1')?.textContent ?? null,
    images: [...document.images].map((im) => ({ alt: im.alt, complete: im.complete, natural: [im.naturalWidth, im.naturalHeight], shown: box(im), external: !im.src.startsWith('data:') })),
    svgs: [...document.querySelectorAll('svg')].map((s) => ({
      label: s.getAttribute('aria-label'),
      shown: box(s),
      paths: [...s.querySelectorAll('path')].map((p) => (p.getAttribute('d') || '').length),
      rects: s.querySelectorAll('rect').length,
      texts: [...s.querySelectorAll('text')].filter((t) => t.getBBox().width > 0).length,
    })),
    tables: [...document.querySelectorAll('table')].map((t) => ({
      title: t.previousElementSibling?.textContent ?? '',
      columns: [...t.querySelectorAll('thead th')].map((th) => th.textContent),
      rows: t.querySelectorAll('tbody tr').length,
      cells: [...t.querySelectorAll('tbody tr')].map((tr) => tr.children.length),
      shown: box(t),
    })),
    page: [document.documentElement.scrollWidth, document.documentElement.scrollHeight],
    viewport: [window.innerWidth, window.innerHeight],
    console: window.__ettCheck.console,
    errors: window.__ettCheck.errors,
  };
  const pre = document.createElement('pre');
  pre.id = 'ett-check-result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>`;

const html = fs.readFileSync(report, 'utf8');
if (!/<\/head>/i.test(html) || !/<\/body>/i.test(html)) {
  console.error(`${report}: not an ETT.js report (no </head> or </body>)`);
  process.exit(1);
}
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-check-report-'));
const probed = path.join(work, 'report.html');
fs.writeFileSync(probed, html.replace(/<\/head>/i, `${PROBE_HEAD}</head>`).replace(/<\/body>(?![\s\S]*<\/body>)/i, `${PROBE_BODY}</body>`));

const baseFlags = [
  '--headless=new',
  '--disable-gpu',
  '--no-sandbox',
  '--hide-scrollbars',
  '--no-first-run',
  `--user-data-dir=${path.join(work, 'profile')}`,
];

function runChromium(extra, url) {
  const r = spawnSync(chromium, [...baseFlags, ...extra, url], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: 120_000 });
  if (r.error) throw new Error(`could not run ${chromium}: ${r.error.message}`);
  return r;
}

const problems = [];
const notes = [];
let result;
try {
  const r = runChromium(
    [`--window-size=${width},900`, '--virtual-time-budget=10000', '--enable-logging=stderr', '--v=0', '--dump-dom'],
    `file://${probed}`,
  );
  const m = /<pre id="ett-check-result">([\s\S]*?)<\/pre>/.exec(r.stdout);
  if (!m) {
    console.error(
      `chromium (exit ${r.status}) did not finish loading the page; stderr tail:\n${r.stderr.split('\n').slice(-15).join('\n')}`,
    );
    process.exit(1);
  }
  result = JSON.parse(
    m[1]
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&amp;/g, '&'),
  );
  // Chromium logs every console message of the page at INFO level; the report has no scripts of its own.
  for (const line of r.stderr.split('\n')) {
    const c = /:CONSOLE(?::\d+)?\] "(.*)", source: (.*)$/.exec(line);
    const seen = c && [...result.console, ...result.errors].some((x) => x.endsWith(c[1]));
    if (c && !seen) (/error|uncaught|failed/i.test(c[1]) ? problems : notes).push(`console: ${c[1]}`);
  }
} finally {
  if (!args.values.screenshot) fs.rmSync(work, { recursive: true, force: true });
}

// The page parsed into the document the generator wrote.
if (!result.h1) problems.push('no <h1> title: the page did not parse as a report');
// Images: decoded, non-zero, and embedded (the report must open offline, on its own).
if (result.images.length === 0) notes.push('no images in the report');
for (const im of result.images) {
  if (!im.complete || im.natural[0] === 0 || im.natural[1] === 0)
    problems.push(`image "${im.alt}" did not decode (natural size ${im.natural.join('x')})`);
  else if (im.shown[0] === 0 || im.shown[1] === 0) problems.push(`image "${im.alt}" is laid out at ${im.shown.join('x')}`);
  if (im.external) problems.push(`image "${im.alt}" is not embedded as a data URL`);
}
// Charts: SVGs with a drawn line (or bars), shown at a real size.
const charts = result.svgs.filter((s) => s.paths.some((n) => n > 0) || s.rects > 0);
if (charts.length === 0) problems.push('no SVG chart with a drawn line or bars');
for (const s of result.svgs) {
  if (s.shown[0] === 0 || s.shown[1] === 0) problems.push(`chart "${s.label}" is laid out at ${s.shown.join('x')}`);
  if (s.paths.length > 0 && s.paths.every((n) => n === 0)) problems.push(`chart "${s.label}" has an empty line`);
  if (s.texts === 0) problems.push(`chart "${s.label}" shows no text (title, axes)`);
}
// The results table: a header and at least one full row.
const results = result.tables.find((t) => /result|accuracy/i.test(t.title)) ?? result.tables[0];
if (!results) problems.push('no results table');
else {
  if (results.rows === 0) problems.push(`table "${results.title}" has no rows`);
  if (results.cells.some((n) => n !== results.columns.length))
    problems.push(
      `table "${results.title}": rows have ${[...new Set(results.cells)].join('/')} cells for ${results.columns.length} columns`,
    );
}
for (const e of [...result.errors, ...result.console.filter((c) => c.startsWith('error'))]) problems.push(e);
for (const w of result.console.filter((c) => c.startsWith('warn'))) notes.push(w);
if (result.page[0] > result.viewport[0])
  notes.push(`the page is ${result.page[0]} px wide in a ${result.viewport[0]} px window (horizontal scrolling)`);

if (args.values.screenshot) {
  const shot = path.resolve(args.values.screenshot);
  fs.mkdirSync(path.dirname(shot), { recursive: true });
  // Full page: the window as tall as the laid-out page (capped, Chromium's limit is 16384 px).
  const height = Math.min(16000, Math.max(600, result.page[1]));
  const plain = path.join(work, 'plain.html');
  fs.writeFileSync(plain, html);
  try {
    runChromium([`--window-size=${width},${height}`, '--virtual-time-budget=5000', `--screenshot=${shot}`], `file://${plain}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  if (!fs.existsSync(shot) || fs.statSync(shot).size === 0) problems.push(`no screenshot written to ${shot}`);
  else notes.push(`screenshot (${width}x${height}): ${shot}`);
}

const kb = (fs.statSync(report).size / 1024).toFixed(0);
console.log(
  `check-report: ${report} (${kb} KB) in ${execFileSync(chromium, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()}`,
);
console.log(`  title: ${result.h1}`);
console.log(`  images: ${result.images.map((i) => `${i.alt} ${i.natural.join('x')}`).join(', ') || 'none'}`);
console.log(`  charts: ${charts.length} of ${result.svgs.length} SVGs drawn`);
console.log(`  tables: ${result.tables.map((t) => `${t.title} (${t.rows}x${t.columns.length})`).join(', ') || 'none'}`);
for (const n of notes) console.log(`  note: ${n}`);
if (problems.length > 0) {
  console.error(`FAILED, ${problems.length} problem(s):`);
  for (const p of problems) console.error(`  - ${p}`);
  process.exit(1);
}
console.log('OK: the report renders in headless Chromium with no errors');
