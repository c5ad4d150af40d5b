/**
 * A small Prometheus text-format registry (counters, gauges, histograms with labels). Written here
 * rather than pulling prom-client because prom-client needs Node modules and this must also run in Workers.
 */
type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k]!)}"`)
    .join(',');
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function fmt(n: number): string {
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return Number.isNaN(n) ? 'NaN' : String(n);
}

export interface Metric {
  render(): string;
}

export class Counter implements Metric {
  private values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${fmt(v)}`);
    return lines.join('\n');
  }
}

export class Gauge implements Metric {
  private values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string) {}
  set(labels: Labels, value: number): void {
    this.values.set(labelKey(labels), value);
  }
  /** Replace all series (e.g. the model-version info gauge has exactly one). */
  reset(): void {
    this.values.clear();
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${fmt(v)}`);
    return lines.join('\n');
  }
}

export class Histogram implements Metric {
  private series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {}
  observe(labels: Labels, value: number): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const pre = k ? `${k},` : '';
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{${pre}le="${fmt(b)}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${pre}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ''} ${fmt(s.sum)}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`);
    }
    return lines.join('\n');
  }
}

/** The API's metrics. Gauges that mirror state (model version, index size) are refreshed at scrape time. */
export class ApiMetrics {
  readonly requests = new Counter('http_requests_total', 'HTTP requests by route, method and status.');
  readonly latency = new Histogram('http_request_duration_seconds', 'HTTP request latency by route, method and status.', [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
  ]);
  readonly batchSize = new Histogram('embed_batch_size', 'Images per forward pass (micro-batch size).', [1, 2, 4, 8, 16, 32, 64, 128, 256]);
  readonly batchSeconds = new Histogram('embed_batch_duration_seconds', 'Forward-pass time per micro-batch.', [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  ]);
  readonly modelInfo = new Gauge('model_info', 'The serving model version (value 1).');
  readonly indexSize = new Gauge('gallery_index_size', 'Vectors in the serving gallery index.');
  readonly loadFailures = new Counter('model_load_failures_total', 'Model versions that failed to load, by version.');
  readonly modelSwaps = new Counter('model_swaps_total', 'Times a new model and index were swapped in.');
  readonly decodeErrors = new Counter('image_decode_errors_total', 'Rejected images by reason.');
  private readonly collected: { metrics: Metric[]; collect: () => void }[] = [];

  /** Series a runtime adds (the Node entry: tfjs tensors, RSS), refreshed by `collect` at each scrape. */
  addCollected(metrics: Metric[], collect: () => void): void {
    this.collected.push({ metrics, collect });
  }

  render(): string {
    for (const c of this.collected) c.collect();
    const all: Metric[] = [
      this.requests,
      this.latency,
      this.batchSize,
      this.batchSeconds,
      this.modelInfo,
      this.indexSize,
      this.loadFailures,
      this.modelSwaps,
      this.decodeErrors,
      ...this.collected.flatMap((c) => c.metrics),
    ];
    return `${all.map((m) => m.render()).join('\n')}\n`;
  }
}
