/**
 * Pure SVG string builders for the report: a line chart (several series, axes, ticks, log-scale option)
 * and a confusion-matrix heat map. No DOM, so they run anywhere; every text is XML-escaped.
 */

export interface Series {
  name: string;
  /** [x, y]; non-finite y (and y ≤ 0 on a log axis) leaves a gap. */
  points: ReadonlyArray<readonly [number, number]>;
  color?: string;
  dashed?: boolean;
}

export interface LineChartOptions {
  series: Series[];
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  logY?: boolean;
  /** Fixed y range (e.g. [0, 1] for accuracies); otherwise fitted to the data. */
  yDomain?: [number, number];
  /** Format y ticks as percentages (values are fractions). */
  percent?: boolean;
  /** Series longer than this are thinned (evenly, always keeping the last point). */
  maxPoints?: number;
  /** Unique within the page (names the clip path); derived from the title when absent. */
  id?: string;
}

/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** About `count` round tick values covering [min, max] (1, 2, 2.5, 5 × 10^k steps). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const ticks: number[] = [];
  // Multiples of step computed afresh (no accumulated rounding: 0.6, not 0.6000000000000001).
  for (let k = Math.ceil(min / step - 1e-9); k * step <= max + step * 1e-9; k++) ticks.push(k === 0 ? 0 : Number((k * step).toPrecision(12)));
  return ticks;
}

/** Powers of ten in [min, max] (with 2× and 5× between when the range spans few decades). */
export function logTicks(min: number, max: number): number[] {
  if (!(min > 0) || !(max > 0)) return [];
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const mults = hi - lo <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let e = lo; e <= hi; e++) for (const m of mults) {
    const v = Number((m * 10 ** e).toPrecision(12));
    if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) ticks.push(v);
  }
  return ticks;
}

export function formatTick(v: number, percent = false): string {
  if (percent) return `${+(v * 100).toFixed(1)}%`;
  if (v === 0) return '0';
  const a = Math.abs(v);
  // Up to 3 significant digits, trailing zeros dropped: 7.5e-4, not a rounded 8e-4.
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2).replace(/\.?0+e/, 'e').replace('e+', 'e');
  if (a >= 1000) return `${+(v / 1000).toFixed(1)}k`;
  return String(+v.toPrecision(3));
}

const fmt = (v: number) => (Math.round(v * 10) / 10).toString();

function thin(points: Series['points'], max: number): Series['points'] {
  if (points.length <= max) return points;
  const stride = points.length / max;
  const out: (readonly [number, number])[] = [];
  for (let i = 0; i < max - 1; i++) out.push(points[Math.floor(i * stride)]!);
  out.push(points[points.length - 1]!);
  return out;
}

export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 480;
  const height = o.height ?? 280;
  const m = { top: o.title ? 30 : 12, right: 16, bottom: o.xLabel ? 44 : 28, left: o.yLabel ? 62 : 48 };
  const legendH = o.series.length > 1 ? 18 * Math.ceil(o.series.length / 3) : 0;
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom - legendH;
  const top = m.top + legendH;
  const ok = (y: number) => Number.isFinite(y) && (!o.logY || y > 0);
  const series = o.series.map((s) => ({ ...s, points: thin(s.points.filter(([x]) => Number.isFinite(x)), o.maxPoints ?? 1500) }));
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.filter((p) => ok(p[1])).map((p) => p[1]));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`);
  parts.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`);
  if (o.title) parts.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="600">${escapeXml(o.title)}</text>`);
  if (xs.length === 0 || ys.length === 0) {
    parts.push(`<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="#888">no data</text></svg>`);
    return parts.join('');
  }
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  let [y0, y1] = o.yDomain ?? [Math.min(...ys), Math.max(...ys)];
  if (o.logY) {
    y0 = Math.max(y0, 1e-12);
    if (y0 === y1) [y0, y1] = [y0 / 2, y1 * 2];
  } else if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  else if (!o.yDomain) {
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = o.logY
    ? (y: number) => top + ph - ((Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0))) * ph
    : (y: number) => top + ph - ((y - y0) / (y1 - y0)) * ph;

  // Grid and axes.
  const yt = o.logY ? logTicks(y0, y1) : niceTicks(y0, y1, Math.max(2, Math.round(ph / 45)));
  for (const t of yt) {
    const y = fmt(sy(t));
    parts.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#444">${escapeXml(formatTick(t, o.percent))}</text>`);
  }
  for (const t of niceTicks(x0, x1, Math.max(2, Math.round(pw / 80)))) {
    const x = fmt(sx(t));
    parts.push(`<line x1="${x}" x2="${x}" y1="${top + ph}" y2="${top + ph + 4}" stroke="#444"/>`);
    parts.push(`<text x="${x}" y="${top + ph + 16}" text-anchor="middle" fill="#444">${escapeXml(formatTick(t))}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  if (o.xLabel) parts.push(`<text x="${m.left + pw / 2}" y="${height - 8}" text-anchor="middle" fill="#222">${escapeXml(o.xLabel)}</text>`);
  if (o.yLabel) {
    parts.push(`<text transform="translate(14 ${top + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222">${escapeXml(o.yLabel)}</text>`);
  }

  // Lines (split at gaps), clipped to the plot area; a lone point gets a dot.
  const clip = `clip-${(o.id ?? "").replace(/[^A-Za-z0-9_-]/g, "_") || Math.abs(hash(JSON.stringify([o.title, o.yLabel, width, height, o.series.map((x) => x.name)])))}`;
  parts.push(`<clipPath id="${clip}"><rect x="${m.left}" y="${top}" width="${pw}" height="${ph}"/></clipPath>`);
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const segs: string[][] = [[]];
    for (const [x, y] of s.points) {
      if (ok(y)) segs[segs.length - 1]!.push(`${fmt(sx(x))},${fmt(sy(y))}`);
      else if (segs[segs.length - 1]!.length) segs.push([]);
    }
    for (const seg of segs) {
      if (seg.length === 1) {
        const [cx, cy] = seg[0]!.split(',');
        parts.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${color}" clip-path="url(#${clip})"/>`);
      } else if (seg.length > 1) {
        parts.push(`<polyline points="${seg.join(' ')}" fill="none" stroke="${color}" stroke-width="1.5"${s.dashed ? ' stroke-dasharray="5 3"' : ''} stroke-linejoin="round" clip-path="url(#${clip})"/>`);
      }
    }
  });

  // Legend above the plot, three entries per row.
  if (o.series.length > 1) {
    const colW = pw / 3;
    o.series.forEach((s, i) => {
      const x = m.left + (i % 3) * colW;
      const y = m.top + 18 * Math.floor(i / 3) + 8;
      const color = s.color ?? PALETTE[i % PALETTE.length]!;
      parts.push(`<line x1="${fmt(x)}" x2="${fmt(x + 18)}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
      parts.push(`<text x="${fmt(x + 24)}" y="${y}" dominant-baseline="middle" fill="#222">${escapeXml(s.name)}</text>`);
    });
  }
  parts.push('</svg>');
  return parts.join('');
}

export interface ConfusionOptions {
  /** counts[true][predicted]. */
  matrix: number[][];
  classNames?: string[];
  title?: string;
  cell?: number;
}

/** Heat map of row-normalised counts (recall per true class); each cell shows its count. */
export function confusionMatrixSvg(o: ConfusionOptions): string {
  const c = o.matrix.length;
  const names = o.classNames ?? o.matrix.map((_, i) => String(i));
  if (names.length !== c) throw new Error(`confusionMatrixSvg: ${names.length} class names for a ${c}×${c} matrix`);
  const cell = o.cell ?? 40;
  const labelW = 8 + 6.5 * Math.max(...names.map((n) => n.length), 1);
  const left = labelW + 20;
  const top = (o.title ? 30 : 10) + labelW * 0.75;
  const width = left + c * cell + labelW * 0.75 + 8;
  const height = top + c * cell + 36;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${fmt(width)}" height="${fmt(height)}" viewBox="0 0 ${fmt(width)} ${fmt(height)}" font-family="system-ui, sans-serif" font-size="11">`);
  parts.push(`<rect x="0" y="0" width="${fmt(width)}" height="${fmt(height)}" fill="#fff"/>`);
  if (o.title) parts.push(`<text x="${fmt(width / 2)}" y="18" text-anchor="middle" font-size="13" font-weight="600">${escapeXml(o.title)}</text>`);
  o.matrix.forEach((row, i) => {
    if (row.length !== c) throw new Error(`confusionMatrixSvg: row ${i} has ${row.length} entries, expected ${c}`);
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, j) => {
      const f = total > 0 ? count / total : 0;
      const x = left + j * cell;
      const y = top + i * cell;
      // White → deep blue; diagonal and off-diagonal share the scale so mistakes stand out as colour.
      const shade = (a: number, b: number) => Math.round(a + (b - a) * Math.sqrt(f));
      const fill = `rgb(${shade(255, 8)},${shade(255, 69)},${shade(255, 148)})`;
      parts.push(`<rect x="${fmt(x)}" y="${fmt(y)}" width="${cell}" height="${cell}" fill="${fill}" stroke="#fff"><title>${escapeXml(`${names[i]} → ${names[j]}: ${count} (${(f * 100).toFixed(1)}%)`)}</title></rect>`);
      parts.push(`<text x="${fmt(x + cell / 2)}" y="${fmt(y + cell / 2)}" text-anchor="middle" dominant-baseline="middle" font-size="10" fill="${f > 0.4 ? '#fff' : '#222'}">${count}</text>`);
    });
    parts.push(`<text x="${fmt(left - 6)}" y="${fmt(top + i * cell + cell / 2)}" text-anchor="end" dominant-baseline="middle">${escapeXml(names[i]!)}</text>`);
  });
  names.forEach((n, j) => {
    const x = left + j * cell + cell / 2;
    parts.push(`<text transform="translate(${fmt(x)} ${fmt(top - 6)}) rotate(-45)" text-anchor="start">${escapeXml(n)}</text>`);
  });
  parts.push(`<text transform="translate(10 ${fmt(top + (c * cell) / 2)}) rotate(-90)" text-anchor="middle" font-weight="600">true class</text>`);
  parts.push(`<text x="${fmt(left + (c * cell) / 2)}" y="${fmt(top + c * cell + 22)}" text-anchor="middle" font-weight="600">predicted class</text>`);
  parts.push('</svg>');
  return parts.join('');
}

function hash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}
