import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodePng } from '@ettjs/data';
import { accuracyChart, lineChart, metricSeries, readMetricsLog, renderReport, stageSpans, usageHistogram, writeReport } from './report';

describe('report', () => {
  it('lays stages end to end on one step axis', () => {
    const s = metricSeries([
      { step: 0, stage: 'a', loss: 3 },
      { step: 9, stage: 'a', loss: 2 },
      { step: 0, stage: 'b', loss: 1, stageStep: 0, other: { total: 5 } },
    ]);
    expect(s.get('loss')).toEqual([
      [0, 3],
      [9, 2],
      [10, 1],
    ]);
    expect(s.has('stageStep')).toBe(false);
    expect(s.get('other.total')).toEqual([[10, 5]]);
  });

  it('draws a polyline through every point, scaled into the box', () => {
    const svg = lineChart(
      'l',
      [
        [0, 0],
        [10, 1],
      ],
      100,
      100,
    );
    // x from pad.l=48 to 90, y from 76 (bottom) to 22 (top)
    expect(svg).toContain('d="M48.0,76.0L90.0,22.0"');
  });

  it('counts used codes in the histogram title', () => {
    expect(usageHistogram('tok', [0, 3, 1, 0])).toContain('tok: 2/4 codes used');
  });

  it('writes a self-contained html with tables, images and escaped text', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-report-'));
    const png = new Uint8Array([137, 80, 78, 71]);
    const file = writeReport(dir, {
      title: 'Run <1>',
      metrics: [
        { step: 0, loss: 1 },
        { step: 1, loss: 0.5 },
      ],
      images: [{ file: 'grid.png', title: 'grid', png }],
      tables: [{ title: 'Results', columns: ['arm', 'acc'], rows: [['ett', 0.5]] }],
    });
    const html = fs.readFileSync(file, 'utf8');
    expect(html).toContain('Run &#60;1&#62;');
    expect(html).toContain(`data:image/png;base64,${Buffer.from(png).toString('base64')}`);
    expect(html).toContain('<td>ett</td><td class="num">0.5000</td>');
    expect(fs.readFileSync(path.join(dir, 'grid.png'))).toEqual(Buffer.from(png));
    expect(renderReport({ title: 't', metrics: [] })).toContain('No metrics recorded.');
  });

  it('marks stage boundaries, keeps axis labels short and counts as integers', () => {
    const metrics = [
      { step: 1, stage: 'a', lr: 0.002 },
      { step: 10, stage: 'a', lr: 0.002 },
      { step: 1, stage: 'b', lr: 1.364e-5 },
      { step: 20, stage: 'b', lr: 0 },
    ];
    const spans = stageSpans(metrics);
    expect(spans).toEqual([
      { stage: 'a', start: 1, end: 10 },
      { stage: 'b', start: 12, end: 31 },
    ]);
    const svg = lineChart('lr', metricSeries(metrics).get('lr')!, 320, 180, spans);
    expect(svg.match(/class="stage"/g)).toHaveLength(1);
    expect(svg.match(/d="[^"]*"/)![0].match(/M/g)).toHaveLength(2); // no line bridging the two stages
    expect(svg).toContain('<title>b</title>');
    expect(svg).toContain('>0.002</text>'); // not 0.002000, which overflows the 48-px margin
    const html = renderReport({
      title: 't',
      metrics,
      tables: [
        {
          title: 'r',
          columns: ['n', 'acc'],
          rows: [
            [16, 0.25],
            [256, 1],
          ],
        },
      ],
    });
    expect(html).toContain('<td class="num">16</td><td class="num">0.2500</td>');
    expect(html).toContain('<td class="num">256</td><td class="num">1.000</td>'); // counts as integers, an accuracy of 1 as 1.000
    expect(html).toContain('dashed lines mark where each begins: a (step 1), b (step 12)');
  });

  it('draws small pixel grids at a whole-number scale', () => {
    const png = encodePng(new Float32Array(10 * 100 * 3), 10, 100); // 100 wide, 10 high
    const html = renderReport({ title: 't', metrics: [], images: [{ file: 'g.png', title: 'g', png }] });
    expect(html).toContain('width="400" height="40"'); // ×4 at most
  });

  it('reads a metrics log, tolerating only a torn last line', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ett-log-'));
    const f = path.join(dir, 'metrics.jsonl');
    fs.writeFileSync(f, '{"step":0,"loss":1}\n{"step":1,"lo');
    expect(readMetricsLog(f)).toEqual([{ step: 0, loss: 1 }]);
    fs.writeFileSync(f, '{"step":0,"loss":1}\n{"st\n{"step":2}\n');
    expect(() => readMetricsLog(f)).toThrow(/metrics.jsonl:2: not valid JSON/);
  });
});

describe('accuracy charts', () => {
  it('draws each series on a fixed 0–100 % axis with a dashed chance line and a legend', () => {
    const svg = accuracyChart(
      {
        title: 'colour',
        chance: 0.25,
        series: [
          {
            name: 'frozen',
            points: [
              [0, 0],
              [10, 1],
            ],
          },
          { name: 'ett', points: [[10, 0.5]] },
        ],
      },
      320,
      200,
    );
    // x from pad.l=40 to 310, y from 162 (0 %) to 22 (100 %); chance 0.25 -> 162 - 0.25·140 = 127
    expect(svg).toContain('d="M40.0,162.0L310.0,22.0"');
    expect(svg).toContain('d="M310.0,92.0h0"');
    expect(svg).toContain('y1="127.0"');
    expect(svg).toContain('chance 25.0%');
    expect(svg.match(/class="acc"/g)).toHaveLength(2);
    expect(svg).toContain('>frozen</text>');
    expect(svg).toContain('>ett</text>');
  });

  it('puts warnings and accuracy charts into the report', () => {
    const html = renderReport({
      title: 't',
      metrics: [],
      warnings: ['stage 2: ett ended at chance on colour'],
      accuracyCurves: [{ title: 'stage 2: colour', chance: 1 / 6, series: [{ name: 'ett', points: [[250, 0.5]] }] }],
    });
    expect(html).toContain('<p class="warn">stage 2: ett ended at chance on colour</p>');
    expect(html).toContain('Caption accuracy during training');
    expect(html).toContain('aria-label="stage 2: colour"');
  });
});
