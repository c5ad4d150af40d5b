import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main as reportCli } from '../gpu-worker/report-cli.js';
import { parseProgressLines, progressLine, type ProgressEvent } from '../shared/eval/progress-schema.js';
import { renderReport } from '../shared/eval/report.js';
import type { EvalResult } from '../shared/eval/result-schema.js';
import { confusionMatrixSvg, formatTick, lineChart, logTicks, niceTicks } from '../shared/eval/svg.js';

/**
 * A strict little XML reader: one root, balanced tags, quoted unique attributes, only the five
 * predefined or numeric entities, no stray '<' or '&'. Returns element names in document order.
 */
function parseXml(s: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const entities = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;
  const checkText = (t: string, where: number) => {
    for (let j = 0; j < t.length; j++) {
      if (t[j] === '<') throw new Error(`stray '<' at ${where + j}`);
      if (t[j] === '&') {
        entities.lastIndex = j;
        if (!entities.test(t)) throw new Error(`bad entity at ${where + j}: ${t.slice(j, j + 12)}`);
      }
    }
  };
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"]*")*)\s*(\/?)>/y;
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    const text = s.slice(i, lt < 0 ? s.length : lt);
    if (text.trim() && stack.length === 0) throw new Error(`text outside the root at ${i}`);
    checkText(text, i);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(s);
    if (!m) throw new Error(`malformed tag at ${lt}: ${s.slice(lt, lt + 40)}`);
    const [, close, name, attrs, selfClose] = m;
    if (close) {
      if (attrs!.trim() || selfClose) throw new Error(`bad closing tag at ${lt}`);
      if (stack.pop() !== name) throw new Error(`</${name}> at ${lt} does not close the open element`);
    } else {
      if (stack.length === 0 && ++roots > 1) throw new Error('more than one root element');
      const seen = new Set<string>();
      for (const a of attrs!.matchAll(/([\w:.-]+)="([^"]*)"/g)) {
        if (seen.has(a[1]!)) throw new Error(`duplicate attribute ${a[1]} on <${name}>`);
        seen.add(a[1]!);
        checkText(a[2]!, lt);
      }
      names.push(name!);
      if (!selfClose) stack.push(name!);
    }
    i = tag.lastIndex;
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) throw new Error('no root element');
  return names;
}

describe('parseXml (the test oracle itself)', () => {
  it('rejects what is not well-formed', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow();
    expect(() => parseXml('<svg><text>a < b</text></svg>')).toThrow();
    expect(() => parseXml('<svg><text>a & b</text></svg>')).toThrow();
    expect(() => parseXml('<svg x="1" x="2"/>')).toThrow();
    expect(parseXml('<svg a="&amp;"><g/><text>x &lt; y</text></svg>')).toEqual(['svg', 'g', 'text']);
  });
});

describe('svg builders', () => {
  it('line chart: well-formed with several series, gaps, a log axis, escaping and a lone point', () => {
    const steps = Array.from({ length: 3000 }, (_, i) => i);
    const svg = lineChart({
      title: 'Loss <terms> & "friends"',
      xLabel: 'step',
      yLabel: 'value',
      logY: true,
      series: [
        { name: 'a<b', points: steps.map((s) => [s, 100 / (s + 1)] as [number, number]) },
        { name: 'with gaps', points: steps.map((s) => [s, s % 500 < 10 ? NaN : 1 + (s % 7)] as [number, number]), dashed: true },
        { name: 'zero is a gap on log', points: [[0, 0], [10, 5]] },
      ],
    });
    const names = parseXml(svg);
    expect(names.filter((n) => n === 'polyline').length).toBeGreaterThanOrEqual(7); // 1 + 6 segments
    expect(names).toContain('circle'); // the lone positive point of the third series
    expect(svg).toContain('Loss &lt;terms&gt; &amp; &quot;friends&quot;');
    // Thinned to ≤ maxPoints per series.
    const firstLine = /<polyline points="([^"]*)"/.exec(svg)![1]!;
    expect(firstLine.split(' ').length).toBeLessThanOrEqual(1500);
    expect(svg).toContain('>0.1<'); // log ticks: decades
    expect(svg).toContain('>100<');
  });

  it('line chart: empty and constant data still give a well-formed picture', () => {
    parseXml(lineChart({ series: [] }));
    expect(lineChart({ series: [{ name: 'x', points: [] }] })).toContain('no data');
    parseXml(lineChart({ series: [{ name: 'flat', points: [[1, 2], [2, 2]] }], percent: true, yDomain: [0, 1] }));
  });

  it('ticks are round and cover the range', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(3, 97, 4)).toEqual([25, 50, 75]);
    expect(logTicks(0.3, 9)).toEqual([0.5, 1, 2, 5]); // few decades: 1-2-5
    expect(logTicks(0.003, 20)).toEqual([0.01, 0.1, 1, 10]);
    expect([7.5e-4, 1e-4, 2.5e5, 1500, 0.25].map((v) => formatTick(v))).toEqual(['7.5e-4', '1e-4', '2.5e5', '1.5k', '0.25']);
    expect(formatTick(0.861, true)).toBe('86.1%');
    expect(logTicks(1e-5, 1e3)).toEqual([1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100, 1000]);
  });

  it('confusion matrix: well-formed, one cell per pair, escaped names, checked shape', () => {
    const m = [[50, 2, 0], [3, 40, 7], [0, 0, 60]];
    const svg = confusionMatrixSvg({ matrix: m, classNames: ['T-shirt/top', 'A & B', 'Bag'], title: 'cm' });
    const names = parseXml(svg);
    expect(names.filter((n) => n === 'rect').length).toBe(1 + 9);
    expect(svg).toContain('A &amp; B');
    expect(() => confusionMatrixSvg({ matrix: m, classNames: ['a'] })).toThrow(/1 class names for a 3×3/);
  });
});

function fakeRun(): { events: ProgressEvent[]; evaluation: EvalResult } {
  const events: ProgressEvent[] = [{ type: 'start', config: { batch: 256 }, backend: 'wasm', t: 1_700_000_000_000 }];
  for (let s = 1; s <= 200; s++) {
    events.push({ type: 'step', step: s, epoch: s / 100, loss: 40 / Math.sqrt(s), invariance: 0.5 / s, variance: 0.8 / Math.sqrt(s), covariance: 2 / s, lr: 0.3 * Math.min(1, s / 20), imagesPerSec: 150, etaSeconds: 200 - s });
    if (s % 20 === 0) events.push({ type: 'health', step: s, std: 0.5 + s / 400, normStd: 0.05, effectiveRank: 10 + s / 4 });
  }
  events.push({ type: 'epoch', epoch: 1, step: 100, knnTop1: 0.7, seconds: 60 }, { type: 'epoch', epoch: 2, step: 200, knnTop1: 0.78, seconds: 120 }, { type: 'end', seconds: 121 });
  const cm = Array.from({ length: 10 }, (_, i) => Array.from({ length: 10 }, (_, j) => (i === j ? 80 : 2)));
  const evaluation: EvalResult = {
    dataset: 'fashion-mnist',
    checkpoint: 'v1 <b>',
    trainCount: 60000,
    testCount: 10000,
    numClasses: 10,
    classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
    encoder: { dim: 128, knn: [{ k: 20, temperature: 0.07, top1: 0.861, top5: 0.99 }, { k: 200, temperature: 0.07, top1: 0.85, top5: 0.995 }], linear: { top1: 0.87, top5: 0.995, epochs: 100, optimizer: 'adam' }, confusion: { source: 'linear', matrix: cm }, stats: { std: 0.9, normStd: 0.07, effectiveRank: 90 } },
    raw: { dim: 784, knn: [{ k: 20, temperature: 0.07, top1: 0.846, top5: 0.98 }], linear: { top1: 0.84, top5: 0.99, epochs: 100, optimizer: 'adam' } },
  };
  return { events, evaluation };
}

describe('renderReport', () => {
  it('is one self-contained page with every plot, the metrics and the baselines', () => {
    const { events, evaluation } = fakeRun();
    const html = renderReport({ title: 'Run <1>', progress: events, evaluation, meta: { commit: 'abc' } });
    const svgs = html.match(/<svg[\s\S]*?<\/svg>/g)!;
    expect(svgs.length).toBe(8); // loss, terms, lr, throughput, std, rank, kNN/epoch, confusion
    for (const s of svgs) parseXml(s);
    for (const t of ['VICReg loss', 'invariance', 'covariance', 'Learning rate', 'Effective rank', 'kNN top-1 on the validation split over epochs', 'predicted class']) expect(html).toContain(t);
    expect(html).toContain('Run &lt;1&gt;');
    expect(html).toContain('v1 &lt;b&gt;');
    expect(html).toContain('86.1%'); // encoder kNN
    expect(html).toContain('84.6%'); // raw-pixel kNN
    expect(html).toContain('+1.5'); // encoder − raw kNN, points
    expect(html).toContain('+3.0'); // linear
    // No external resources: it must open offline from a file.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    // Clip-path ids are unique within the page.
    const ids = [...html.matchAll(/<clipPath id="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('renders training curves alone when there is no evaluation yet', () => {
    const { events } = fakeRun();
    const html = renderReport({ title: 't', progress: events.slice(0, 50) });
    expect(html).toContain('No evaluation');
    expect(html).not.toContain('predicted class');
  });
});

describe('progress.jsonl', () => {
  it('round-trips events, accepts the loop\'s `event` key, keeps extra fields, reports bad lines', () => {
    const { events } = fakeRun();
    const text = events.slice(0, 5).map(progressLine).join('') +
      '{"event":"step","step":9,"epoch":0,"loss":null,"invariance":1,"variance":1,"covariance":1,"lr":0.1,"totalSteps":10,"extra":"kept"}\n' +
      '\n{"type":"step","step":-1}\n{"type":"step"'; // a truncated last line, as after a crash
    const { events: got, errors } = parseProgressLines(text);
    expect(got.slice(0, 5)).toEqual(events.slice(0, 5));
    expect(got[5]).toMatchObject({ type: 'step', step: 9, loss: null, extra: 'kept' });
    expect(errors.map((e) => e.line)).toEqual([8, 9]);
    expect(errors[1]!.message).toMatch(/not JSON/);
    // A diverging run's NaN metrics are written as null, not a crash; structural fields are enforced.
    expect(JSON.parse(progressLine({ type: 'health', step: 1, std: NaN, effectiveRank: 1 }))).toEqual({ type: 'health', step: 1, std: null, effectiveRank: 1 });
    expect(() => progressLine({ type: 'step', step: 3, epoch: 0, loss: 1, invariance: 1, variance: 1, covariance: 1 })).toThrow(/progress event is invalid.*lr/);
  });
});

describe('report CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes report.html from progress.jsonl and eval.json', async () => {
    const { events, evaluation } = fakeRun();
    writeFileSync(join(dir, 'progress.jsonl'), events.map(progressLine).join('') + 'garbage\n');
    writeFileSync(join(dir, 'eval.json'), JSON.stringify(evaluation));
    const out = await reportCli(['--run', dir]);
    expect(out).toBe(join(dir, 'report.html'));
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('86.1%');
    expect(html).toContain(`progress.jsonl line ${events.length + 1}: not JSON`);
    const custom = join(dir, 'custom.html');
    await reportCli(['--run', dir, '--out', custom, '--title', 'Mine']);
    expect(readFileSync(custom, 'utf8')).toContain('<title>Mine</title>');
  });

  it('explains what is wrong with its arguments and inputs', async () => {
    await expect(reportCli([])).rejects.toThrow(/--run is required/);
    await expect(reportCli(['--run', dir, '--bogus'])).rejects.toThrow(/unknown flag --bogus; valid flags: --run --out --title --help[\s\S]*usage/);
    await expect(reportCli(['--run', join(dir, 'nope')])).rejects.toThrow(/progress\.jsonl not found/);
    writeFileSync(join(dir, 'eval.json'), JSON.stringify({ dataset: 'x' }));
    await expect(reportCli(['--run', dir])).rejects.toThrow(/eval\.json is not an evaluation result[\s\S]*trainCount/);
    rmSync(join(dir, 'eval.json'));
    const out = await reportCli(['--run', dir]);
    expect(readFileSync(out, 'utf8')).toContain('no eval.json');
    expect(existsSync(out)).toBe(true);
  });
});
