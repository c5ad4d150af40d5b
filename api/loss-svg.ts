/** The loss curve of a job as a small standalone SVG (no dependencies; escapes all text). */
export function lossSvg(points: readonly (readonly [number, number])[], title: string, width = 640, height = 320): string {
  const pad = { l: 56, r: 16, t: 28, b: 36 };
  const w = width - pad.l - pad.r;
  const h = height - pad.t - pad.b;
  const finite = points.filter(([s, l]) => Number.isFinite(s) && Number.isFinite(l));
  const head = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`;
  const titleEl = `<text x="${pad.l}" y="18" font-weight="bold">${esc(title)}</text>`;
  if (finite.length === 0) return `${head}<rect width="100%" height="100%" fill="white"/>${titleEl}<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no loss recorded yet</text></svg>`;
  const xs = finite.map((p) => p[0]);
  const ys = finite.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const sx = (x: number) => pad.l + (x1 === x0 ? w / 2 : ((x - x0) / (x1 - x0)) * w);
  const sy = (y: number) => pad.t + h - ((y - y0) / (y1 - y0)) * h;
  const path = finite.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
  const ticks = [y0, (y0 + y1) / 2, y1]
    .map((y) => `<text x="${pad.l - 6}" y="${sy(y) + 4}" text-anchor="end">${esc(y.toPrecision(4))}</text>`)
    .join('');
  return (
    `${head}<rect width="100%" height="100%" fill="white"/>${titleEl}` +
    `<rect x="${pad.l}" y="${pad.t}" width="${w}" height="${h}" fill="none" stroke="#ccc"/>${ticks}` +
    `<text x="${pad.l}" y="${height - 10}">step ${x0}</text><text x="${pad.l + w}" y="${height - 10}" text-anchor="end">step ${x1}</text>` +
    `<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="2"/></svg>`
  );
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}
