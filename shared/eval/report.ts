import type { ProgressEvent } from './progress-schema.js';
import type { EvalResult, FeatureEval } from './result-schema.js';
import { confusionMatrixSvg, escapeXml, lineChart, type Series } from './svg.js';

export interface ReportInput {
  title: string;
  progress: ProgressEvent[];
  evaluation?: EvalResult;
  /** Extra key/value lines for the header (command, run folder, git commit…). */
  meta?: Record<string, string | number | boolean | null | undefined>;
  /** Problems found while reading the inputs (e.g. unparsable progress lines), shown, not hidden. */
  warnings?: string[];
}

type Pt = [number, number];

/**
 * One self-contained HTML page for a training run: metrics table (encoder beside raw-pixel baselines),
 * loss and its three terms, learning rate, throughput, representation std and effective rank, kNN
 * accuracy per epoch and the confusion matrix. Inline CSS and SVG only: it opens from a file, offline.
 */
export function renderReport(input: ReportInput): string {
  const ev = input.progress;
  const steps = ev.filter((e) => e.type === 'step');
  const epochs = ev.filter((e) => e.type === 'epoch');
  const start = ev.find((e) => e.type === 'start');
  const end = [...ev].reverse().find((e) => e.type === 'end');
  const series = (name: string, pts: Pt[], extra: Partial<Series> = {}): Series => ({ name, points: pts, ...extra });
  const stepPts = (f: (e: (typeof steps)[number]) => number | null | undefined): Pt[] =>
    steps.map((e) => [e.step, f(e) ?? NaN] as Pt);

  // Health figures come either as 'health' lines or riding on step lines.
  const health = new Map<number, { std?: number | null; normStd?: number | null; effectiveRank?: number | null }>();
  for (const e of ev) {
    if (e.type === 'health') health.set(e.step, { std: e.std, normStd: e.normStd, effectiveRank: e.effectiveRank });
    if (e.type === 'step' && (e.std !== undefined || e.effectiveRank !== undefined)) {
      health.set(e.step, { std: e.std, normStd: e.normStd, effectiveRank: e.effectiveRank });
    }
  }
  const h = [...health.entries()].sort((a, b) => a[0] - b[0]);
  const hPts = (k: 'std' | 'normStd' | 'effectiveRank'): Pt[] => h.map(([s, v]) => [s, v[k] ?? NaN] as Pt);

  const charts: string[] = [];
  const chart = (id: string, o: Omit<Parameters<typeof lineChart>[0], 'id'>, note?: string) =>
    charts.push(`<figure>${lineChart({ id, width: 460, height: 280, ...o })}${note ? `<figcaption>${escapeXml(note)}</figcaption>` : ''}</figure>`);
  chart('loss', { title: 'VICReg loss', xLabel: 'step', yLabel: 'loss', logY: true, series: [series('loss', stepPts((e) => e.loss))] });
  chart('terms', {
    title: 'Loss terms (unweighted)',
    xLabel: 'step',
    logY: true,
    series: [series('invariance', stepPts((e) => e.invariance)), series('variance', stepPts((e) => e.variance)), series('covariance', stepPts((e) => e.covariance))],
  }, 'Weighted in the loss by λ = 25, μ = 25, ν = 1 unless the run says otherwise.');
  chart('lr', { title: 'Learning rate', xLabel: 'step', yLabel: 'lr', series: [series('lr', stepPts((e) => e.lr))] });
  if (steps.some((e) => e.imagesPerSec !== undefined)) {
    chart('speed', { title: 'Throughput', xLabel: 'step', yLabel: 'images / s', series: [series('images/s', stepPts((e) => e.imagesPerSec))] });
  }
  chart('std', {
    title: 'Representation std (mean per dimension)',
    xLabel: 'step',
    series: [series('raw features', hPts('std')), ...(h.some(([, v]) => v.normStd !== undefined) ? [series('L2-normalised', hPts('normStd'), { dashed: true })] : [])],
  }, 'Falls towards 0 at collapse. For L2-normalised features a healthy value is about 1/√d.');
  chart('rank', { title: 'Effective rank (RankMe)', xLabel: 'step', yLabel: 'rank', series: [series('effective rank', hPts('effectiveRank'))] }, '1 = collapsed to a line; at most min(batch, d).');
  const knnEpochs: Pt[] = epochs.filter((e) => e.knnTop1 !== undefined).map((e) => [e.epoch, e.knnTop1!]);
  chart('knn', { title: 'kNN top-1 on the validation split over epochs', xLabel: 'epoch', yLabel: 'accuracy', percent: true, series: [series('kNN top-1', knnEpochs)] });

  const meta: [string, string][] = [];
  if (start) {
    meta.push(['backend', String(start.backend)]);
    for (const [k, v] of Object.entries(start)) if (!['type', 'backend', 'config', 't'].includes(k)) meta.push([k, show(v)]);
    if (start.t) meta.push(['started', new Date(start.t).toISOString()]);
  }
  const last = steps[steps.length - 1];
  if (last) meta.push(['steps logged', `${steps.length} (last step ${last.step}, epoch ${last.epoch})`]);
  if (end) for (const [k, v] of Object.entries(end)) if (k !== 'type') meta.push([`end: ${k}`, k === 't' && typeof v === 'number' ? new Date(v).toISOString() : show(v)]);
  for (const [k, v] of Object.entries(input.meta ?? {})) if (v !== undefined) meta.push([k, show(v)]);

  const e = input.evaluation;
  const confusion = e?.encoder.confusion;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeXml(input.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}
.meta td{text-align:left;font-family:ui-monospace,monospace;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:12px}
figure{margin:0}figcaption{font-size:12px;color:#666;margin:2px 8px}
.warn{background:#fff4e5;border:1px solid #f0c36d;padding:8px 12px;font-size:13px}
.good{color:#0a7d32}.bad{color:#b3261e}
</style></head><body>
<h1>${escapeXml(input.title)}</h1>
${input.warnings?.length ? `<div class="warn"><b>Input problems</b><ul>${input.warnings.map((w) => `<li>${escapeXml(w)}</li>`).join('')}</ul></div>` : ''}
${e ? metricsSection(e) : '<p class="warn">No evaluation (eval.json) for this run yet: training curves only.</p>'}
<h2>Training</h2>
<div class="grid">${charts.join('\n')}</div>
${confusion ? `<h2>Confusion matrix (${confusion.source === 'linear' ? 'linear probe' : 'kNN'}, ${e?.split ?? 'test'} split)</h2>${confusionMatrixSvg({ matrix: confusion.matrix, ...(e?.classNames ? { classNames: e.classNames } : {}) })}` : ''}
<h2>Run</h2>
<table class="meta">${meta.map(([k, v]) => `<tr><td>${escapeXml(k)}</td><td>${escapeXml(v)}</td></tr>`).join('')}</table>
${start?.config !== undefined ? `<details><summary>Configuration</summary><pre>${escapeXml(JSON.stringify(start.config, null, 2))}</pre></details>` : ''}
</body></html>
`;
}

const pct = (v: number | undefined) => (v === undefined ? '–' : `${(v * 100).toFixed(1)}%`);
const num = (v: number | undefined, digits = 3) => (v === undefined ? '–' : String(+v.toPrecision(digits)));

function metricsSection(e: EvalResult): string {
  const ks = [...new Set([...e.encoder.knn, ...(e.raw?.knn ?? [])].map((m) => m.k))].sort((a, b) => a - b);
  const head = `<tr><th>features</th><th>dim</th>${ks.map((k) => `<th>kNN k=${k} top-1</th><th>top-5</th>`).join('')}<th>linear top-1</th><th>top-5</th><th>std</th><th>eff. rank</th></tr>`;
  const row = (name: string, f: FeatureEval) => {
    const knn = ks.map((k) => f.knn.find((m) => m.k === k)).map((m) => `<td>${pct(m?.top1)}</td><td>${pct(m?.top5)}</td>`).join('');
    return `<tr><td>${escapeXml(name)}</td><td>${f.dim}</td>${knn}<td>${pct(f.linear?.top1)}</td><td>${pct(f.linear?.top5)}</td><td>${num(f.stats?.std)}</td><td>${num(f.stats?.effectiveRank, 4)}</td></tr>`;
  };
  let delta = '';
  if (e.raw) {
    const d = (a?: number, b?: number) => {
      if (a === undefined || b === undefined) return '<td>–</td>';
      const v = (a - b) * 100;
      return `<td class="${v >= 0 ? 'good' : 'bad'}">${v >= 0 ? '+' : ''}${v.toFixed(1)}</td>`;
    };
    const knn = ks.map((k) => {
      const a = e.encoder.knn.find((m) => m.k === k);
      const b = e.raw!.knn.find((m) => m.k === k);
      return d(a?.top1, b?.top1) + d(a?.top5, b?.top5);
    }).join('');
    delta = `<tr><td>encoder − raw (points)</td><td></td>${knn}${d(e.encoder.linear?.top1, e.raw.linear?.top1)}${d(e.encoder.linear?.top5, e.raw.linear?.top5)}<td></td><td></td></tr>`;
  }
  const lin = e.encoder.linear;
  const note = [
    `${escapeXml(e.dataset)}: ${e.trainCount.toLocaleString('en')} train / ${e.testCount.toLocaleString('en')} ${e.split ?? 'test'} images`,
    e.checkpoint ? `checkpoint <code>${escapeXml(e.checkpoint)}</code>` : '',
    lin ? `linear probe: ${lin.optimizer}, ${lin.epochs} epochs${lin.seconds !== undefined ? ` (${lin.seconds.toFixed(0)} s)` : ''}` : '',
    `kNN: cosine, T = ${e.encoder.knn[0]?.temperature ?? 0.07}`,
    e.backend ? `backend ${escapeXml(e.backend)}` : '',
  ].filter(Boolean).join(' · ');
  return `<h2>Evaluation on the ${e.split ?? 'test'} split</h2><table>${head}${row('encoder', e.encoder)}${e.raw ? row('raw pixels', e.raw) : ''}${delta}</table><p style="font-size:13px;color:#555">${note}</p>`;
}

function show(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
