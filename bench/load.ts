/**
 * npm run bench:load — the API under a mixed load, then a soak; or, with --fault store, through an outage of
 * its object store. Figures for docs/RELIABILITY.md.
 *
 * Set-up, as a user runs it: a local S3-compatible server (s3rver, shared/node/local-s3.ts) in its own
 * process on a temp folder; the bundled checkpoint published to it; the API as `node --import tsx
 * api/server.ts` with S3_* pointing at that server (its own settings from the environment; LOG_LEVEL warn
 * unless set, its log written to a file); a labelled gallery of --gallery Fashion-MNIST test images added
 * through the API. The load is generated here over keep-alive HTTP by --concurrency clients, each picking
 * requests at random (seeded) from a mix: embed a PNG (35%), search by image (20%), classify (knn or
 * linear, 20%), add a gallery image as JSON (10%; ids from a pool of 500 so the gallery stops growing),
 * get a gallery item (15%).
 *
 * Default mode. Phase 1: --warmup-seconds unrecorded, then --seconds recorded: requests by operation and
 * status, errors (anything but 2xx, or no answer), p50/p99 of the answered-2xx latencies. Phase 2: a soak of
 * --soak-minutes at --soak-concurrency, scraping /metrics every --sample-seconds for the server's RSS
 * (process_resident_memory_bytes; with the V8 heap in use, the heap just after the last major GC, which is
 * what a leak grows, and external memory) and tfjs tensor count
 * (tfjs_tensors): first, last, min, max, median and the least-squares slope per minute, over the whole soak
 * and over its second half, and every sample.
 *
 * --fault store: the mix for --fault-before-seconds, then the S3 server is killed (SIGKILL: its listener
 * and every connection gone at once) and stays down for --outage-seconds, then restarts on the same port
 * and folder; the mix runs on for --fault-after-seconds. Gallery adds then use fresh ids with their number in the metadata;
 * a refused add is retried after its Retry-After, as a client should. Reported per window (before, outage,
 * after; requests started during the stop and restart themselves are counted apart): answers by operation
 * and status; the recovery time (store listening again → first add answered 201); and lost writes: every
 * add that was answered 201 (including retries that succeeded) is read back after the load, and must be
 * there with its metadata and indexed, as must every seeded image.
 *
 * Progress goes to stderr, one JSON line to stdout. Flags: --help.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { median } from './stats.js';
import { freePort } from './free-port.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const self = fileURLToPath(import.meta.url);
const log = (msg: string) => process.stderr.write(`[bench:load] ${msg}\n`);
const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

const USAGE = `npm run bench:load -- [flags]
  --concurrency N         clients in phase 1 (and the fault run)              [64]
  --seconds N             phase 1, recorded                                     [60]
  --warmup-seconds N      before phase 1, not recorded                          [5]
  --soak-minutes N        phase 2 (0: none)                                     [10]
  --soak-concurrency N    clients in phase 2                                    [--concurrency]
  --sample-seconds N      /metrics sampling period in phase 2                   [10]
  --gallery N             labelled images added before the load                 [500]
  --fault store           instead of the phases: a store outage under load
  --outage-seconds N      how long the store is down                            [60]
  --fault-before-seconds N  load before the outage                              [10]
  --fault-after-seconds N   load after the store is back                        [30]
  --seed N                request mix seed                                      [1]`;

interface Flags {
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  soakMinutes: number;
  soakConcurrency: number;
  sampleSeconds: number;
  gallery: number;
  fault: 'store' | null;
  outageSeconds: number;
  beforeSeconds: number;
  afterSeconds: number;
  seed: number;
}

function parseFlags(argv: string[]): Flags {
  const spec = {
    concurrency: { type: 'string' },
    seconds: { type: 'string' },
    'warmup-seconds': { type: 'string' },
    'soak-minutes': { type: 'string' },
    'soak-concurrency': { type: 'string' },
    'sample-seconds': { type: 'string' },
    gallery: { type: 'string' },
    fault: { type: 'string' },
    'outage-seconds': { type: 'string' },
    'fault-before-seconds': { type: 'string' },
    'fault-after-seconds': { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean' },
  } as const;
  const usage = (msg: string): never => {
    process.stderr.write(`bench:load: ${msg}\n${USAGE}\n`);
    process.exit(2);
  };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: false }));
  } catch (err) {
    return usage((err as Error).message);
  }
  if (values['help']) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const num = (name: string, def: number, min: number): number => {
    const v = values[name];
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) usage(`--${name} must be a number ≥ ${min}, got '${String(v)}'`);
    return n;
  };
  const fault = values['fault'];
  if (fault !== undefined && fault !== 'store') usage(`--fault takes 'store', got '${String(fault)}'`);
  const concurrency = Math.round(num('concurrency', 64, 1));
  return {
    concurrency,
    seconds: num('seconds', 60, 1),
    warmupSeconds: num('warmup-seconds', 5, 0),
    soakMinutes: num('soak-minutes', 10, 0),
    soakConcurrency: Math.round(num('soak-concurrency', concurrency, 1)),
    sampleSeconds: num('sample-seconds', 10, 1),
    gallery: Math.round(num('gallery', 500, 1)),
    fault: fault === 'store' ? 'store' : null,
    outageSeconds: num('outage-seconds', 60, 1),
    beforeSeconds: num('fault-before-seconds', 10, 1),
    afterSeconds: num('fault-after-seconds', 30, 1),
    seed: Math.round(num('seed', 1, 0)),
  };
}

// ---------------------------------------------------------------- the S3 child
/** `bench/load.ts --s3-child DIR PORT`: s3rver on DIR; sends its port and env over IPC; SIGTERM closes it. */
async function s3Child(dir: string, port: number): Promise<void> {
  const { startLocalS3 } = await import('../shared/node/local-s3.js');
  const s3 = await startLocalS3({ dir, port });
  const stop = () => {
    // Close gracefully when idle; do not wait on a client that keeps its connections busy.
    setTimeout(() => process.exit(0), 2_000).unref();
    void s3.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('disconnect', stop);
  process.send!({ port: Number(new URL(s3.endpoint).port), env: s3.env });
}

interface S3Proc {
  child: ChildProcess;
  port: number;
  env: Record<string, string>;
}

function startS3(dir: string, port: number): Promise<S3Proc> {
  const child = spawn(process.execPath, ['--import', 'tsx', self, '--s3-child', dir, String(port)], { cwd: root, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  return new Promise((ok, fail) => {
    child.once('message', (m) => ok({ child, ...(m as { port: number; env: Record<string, string> }) }));
    child.once('exit', (code) => fail(new Error(`the S3 server exited (${code}) before it was ready`)));
  });
}

function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    child.once('exit', () => ok());
    child.kill(signal);
  });
}

// ---------------------------------------------------------------- HTTP
interface Answer {
  status: number; // 0: no answer (connection error)
  ms: number;
  body: string;
  retryAfter: number | null;
}

function makeClient(base: string, sockets: number) {
  const u = new URL(base);
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  const call = (method: string, path: string, body?: Uint8Array | string, contentType?: string, keepBody = false): Promise<Answer> =>
    new Promise((ok) => {
      const t0 = performance.now();
      const payload = typeof body === 'string' ? Buffer.from(body) : body;
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          path,
          method,
          agent,
          headers: payload ? { 'content-type': contentType ?? 'application/octet-stream', 'content-length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => keepBody && chunks.push(c));
          res.on('end', () => {
            const ra = Number(res.headers['retry-after']);
            ok({ status: res.statusCode ?? 0, ms: performance.now() - t0, body: keepBody ? Buffer.concat(chunks).toString('utf8') : '', retryAfter: Number.isFinite(ra) ? ra : null });
          });
          res.on('error', () => ok({ status: 0, ms: performance.now() - t0, body: '', retryAfter: null }));
        },
      );
      req.on('error', () => ok({ status: 0, ms: performance.now() - t0, body: '', retryAfter: null }));
      req.end(payload);
    });
  return { call, close: () => agent.destroy() };
}
type Client = ReturnType<typeof makeClient>;

// ---------------------------------------------------------------- the request mix
const OPS = ['embed', 'search', 'classify', 'gallery_add', 'gallery_get'] as const;
type Op = (typeof OPS)[number];
const WEIGHTS: Record<Op, number> = { embed: 35, search: 20, classify: 20, gallery_add: 10, gallery_get: 15 };
const ADD_POOL = 500;

/** mulberry32: a small seeded generator, so two runs send the same sequence of choices. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pickOp(r: number): Op {
  const total = OPS.reduce((a, o) => a + WEIGHTS[o], 0);
  let x = r * total;
  for (const o of OPS) if ((x -= WEIGHTS[o]) < 0) return o;
  return 'embed';
}

interface Images {
  pngs: Uint8Array[];
  base64: string[];
  labels: string[];
  gallery: number;
}

/** Counts by operation and status; latencies of the 2xx answers. */
class Recorder {
  readonly byOp = new Map<Op, { status: Map<number, number>; ok: number[] }>();
  started = performance.now();
  ended = this.started;
  add(op: Op, a: Answer): void {
    let e = this.byOp.get(op);
    if (!e) this.byOp.set(op, (e = { status: new Map(), ok: [] }));
    e.status.set(a.status, (e.status.get(a.status) ?? 0) + 1);
    if (a.status >= 200 && a.status < 300) e.ok.push(a.ms);
  }
  summary() {
    const q = (xs: number[], p: number) => {
      if (xs.length === 0) return null;
      const s = [...xs].sort((a, b) => a - b);
      return r1(s[Math.min(s.length - 1, Math.floor(p * s.length))]!);
    };
    const seconds = (this.ended - this.started) / 1000;
    const perOp: Record<string, unknown> = {};
    const all: number[] = [];
    const statuses = new Map<number, number>();
    let requests = 0;
    let errors = 0;
    for (const op of OPS) {
      const e = this.byOp.get(op);
      if (!e) continue;
      const n = [...e.status.values()].reduce((a, b) => a + b, 0);
      const err = [...e.status].filter(([s]) => s < 200 || s >= 300).reduce((a, [, c]) => a + c, 0);
      requests += n;
      errors += err;
      all.push(...e.ok);
      for (const [s, c] of e.status) statuses.set(s, (statuses.get(s) ?? 0) + c);
      perOp[op] = { requests: n, errors: err, by_status: Object.fromEntries(e.status), p50_ms: q(e.ok, 0.5), p99_ms: q(e.ok, 0.99) };
    }
    return {
      seconds: r1(seconds),
      requests,
      rps: r1(requests / Math.max(seconds, 1e-9)),
      errors,
      by_status: Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])),
      p50_ms: q(all, 0.5),
      p99_ms: q(all, 0.99),
      ops: perOp,
    };
  }
}

interface MixOptions {
  client: Client;
  images: Images;
  concurrency: number;
  /** Stop starting requests once this returns true. */
  done: () => boolean;
  /** Where each answer is counted (null: not recorded), chosen when the request starts. */
  recorder: () => Recorder | null;
  random: () => number;
  /** The gallery add to send (id and JSON body) and what to do with its answer; default: replace an id from the pool. */
  add?: () => { path: string; body: string; onAnswer?: (a: Answer) => void };
}

async function runMix(o: MixOptions): Promise<void> {
  const { client, images } = o;
  let adds = 0;
  const pick = () => Math.floor(o.random() * images.pngs.length);
  const one = async (): Promise<void> => {
    const op = pickOp(o.random());
    const rec = o.recorder();
    let a: Answer;
    if (op === 'embed') a = await client.call('POST', '/v1/embeddings', images.pngs[pick()], 'image/png');
    else if (op === 'search') a = await client.call('POST', '/v1/search?k=10', images.pngs[pick()], 'image/png');
    else if (op === 'classify') a = await client.call('POST', `/v1/classify?method=${o.random() < 0.5 ? 'knn&k=20' : 'linear'}`, images.pngs[pick()], 'image/png');
    else if (op === 'gallery_get') a = await client.call('GET', `/v1/images/seed-${Math.floor(o.random() * images.gallery)}`);
    else {
      const add = o.add?.() ?? defaultAdd(adds++);
      a = await client.call('POST', add.path, add.body, 'application/json');
      add.onAnswer?.(a);
    }
    rec?.add(op, a);
  };
  const defaultAdd = (n: number): { path: string; body: string; onAnswer?: (a: Answer) => void } => {
    const i = pick();
    return { path: '/v1/images', body: JSON.stringify({ id: `load-${n % ADD_POOL}`, label: images.labels[i], base64: images.base64[i] }) };
  };
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (!o.done()) await one();
    }),
  );
}

// ---------------------------------------------------------------- metrics
async function scrape(client: Client): Promise<{ rss: number | null; heap: number | null; afterGc: number | null; external: number | null; tensors: number | null; index: number | null }> {
  const a = await client.call('GET', '/metrics', undefined, undefined, true);
  const value = (name: string) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(a.body);
    return m ? Number(m[1]) : null;
  };
  return {
    rss: value('process_resident_memory_bytes'),
    heap: value('nodejs_heap_used_bytes'),
    afterGc: value('nodejs_heap_used_after_major_gc_bytes'),
    external: value('nodejs_external_memory_bytes'),
    tensors: value('tfjs_tensors'),
    index: value('gallery_index_size'),
  };
}

/** Least-squares slope of y against t (per unit of t). */
function slope(t: number[], y: number[]): number | null {
  const n = t.length;
  if (n < 2) return null;
  const mt = t.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (t[i]! - mt) * (y[i]! - my);
    den += (t[i]! - mt) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function series(t0: number[], y0: number[], unit: string) {
  // A gauge not set yet (no major GC so far) is missing from the early samples.
  const keep = y0.map((v) => Number.isFinite(v));
  const t = t0.filter((_, i) => keep[i]);
  const y = y0.filter((_, i) => keep[i]);
  if (y.length === 0) return null;
  const half = t.length >> 1;
  const s = slope(t, y);
  const s2 = slope(t.slice(half), y.slice(half));
  return {
    unit,
    first: r1(y[0]!),
    last: r1(y.at(-1)!),
    min: r1(Math.min(...y)),
    max: r1(Math.max(...y)),
    median: r1(median(y)),
    slope_per_min: s === null ? null : r3(s),
    slope_per_min_second_half: s2 === null ? null : r3(s2),
  };
}

// ---------------------------------------------------------------- main
async function waitReady(base: string, api: ChildProcess, ms: number): Promise<{ model: { version: string; runtime: string | null }; indexSize: number }> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (api.exitCode !== null) throw new Error(`the API exited (${api.exitCode}) before it was ready`);
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.ok) return (await res.json()) as { model: { version: string; runtime: string | null }; indexSize: number };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the API was not ready within ${ms / 1000} s`);
}

async function loadImages(gallery: number): Promise<Images> {
  const { loadFashionMnist } = await import('../shared/node/datasets.js');
  const n = gallery + 1000;
  const ds = await loadFashionMnist('test', { limit: n });
  const pngs: Uint8Array[] = [];
  for (let i = 0; i < ds.n; i++)
    pngs.push(new Uint8Array(await sharp(Buffer.from(ds.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer()));
  const names = ds.classNames ?? [];
  return {
    pngs,
    base64: pngs.map((p) => Buffer.from(p).toString('base64')),
    labels: Array.from({ length: ds.n }, (_, i) => names[ds.labels![i]!] ?? String(ds.labels![i])),
    gallery: Math.min(gallery, ds.n),
  };
}

async function main(flags: Flags): Promise<void> {
  const started = new Date();
  const load0 = loadavg();
  const dir = await mkdtemp(join(tmpdir(), 'bench-load-'));
  const children: ChildProcess[] = [];
  // Ctrl-C: leave no server behind.
  const abort = () => {
    for (const c of children) c.kill('SIGKILL');
    void rm(dir, { recursive: true, force: true }).finally(() => process.exit(130));
  };
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  let client: Client | null = null;
  try {
    let s3 = await startS3(join(dir, 's3'), 0);
    children.push(s3.child);
    log(`S3 server on port ${s3.port} (pid ${s3.child.pid})`);
    const { createS3Store } = await import('../shared/store/s3-store.js');
    const { s3ConfigFromEnv } = await import('../shared/store/config.js');
    const { ensureModelPublished } = await import('../scripts/bundled-checkpoint.js');
    const published = await ensureModelPublished(createS3Store(s3ConfigFromEnv(s3.env)), join(root, 'checkpoints/bundled'));

    const port = await freePort();
    const apiLog = join(dir, 'api.log');
    const logFd = openSync(apiLog, 'a');
    const apiEnv = { ...process.env, ...s3.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: process.env['LOG_LEVEL'] ?? 'warn' };
    const api = spawn(process.execPath, ['--import', 'tsx', join(root, 'api/server.ts')], { cwd: root, env: apiEnv, stdio: ['ignore', logFd, logFd] });
    children.push(api);
    const base = `http://127.0.0.1:${port}`;
    const ready = await waitReady(base, api, 180_000);
    log(`API ${base} (pid ${api.pid}; model ${ready.model.version} on ${ready.model.runtime})`);

    const images = await loadImages(flags.gallery);
    client = makeClient(base, Math.max(flags.concurrency, flags.soakConcurrency) + 8);
    const seedClient = client;
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < images.gallery) {
          const i = next++;
          const a = await seedClient.call('POST', '/v1/images', JSON.stringify({ id: `seed-${i}`, label: images.labels[i], base64: images.base64[i] }), 'application/json');
          if (a.status !== 201) throw new Error(`seeding the gallery: seed-${i} answered ${a.status}`);
        }
      }),
    );
    log(`gallery seeded with ${images.gallery} labelled images`);

    const setup = {
      api: `node --import tsx api/server.ts (pid ${api.pid})`,
      model: ready.model,
      store: `s3rver in its own process (${published.action === 'none' ? 'model present' : 'bundled checkpoint published'})`,
      settings: Object.fromEntries(Object.entries(apiEnv).filter(([k]) => /^(SERVING_|BATCH_|MAX_|VICREG_|LOG_LEVEL|POLL_INTERVAL_MS|GALLERY_)/.test(k))),
      mix: WEIGHTS,
      gallery_seeded: images.gallery,
    };
    const random = rng(flags.seed);
    let result: Record<string, unknown>;

    if (flags.fault === 'store') {
      result = await faultStore(flags, { client, images, random, dir, s3, onS3: (p) => ((s3 = p), children.push(p.child)) });
    } else {
      // Phase 1.
      if (flags.warmupSeconds > 0) {
        const end = performance.now() + flags.warmupSeconds * 1000;
        await runMix({ client, images, concurrency: flags.concurrency, done: () => performance.now() >= end, recorder: () => null, random });
      }
      const p1 = new Recorder();
      const end1 = performance.now() + flags.seconds * 1000;
      p1.started = performance.now();
      await runMix({ client, images, concurrency: flags.concurrency, done: () => performance.now() >= end1, recorder: () => p1, random });
      p1.ended = performance.now();
      const s1 = p1.summary();
      log(`phase 1: ${s1.requests} requests (${s1.rps}/s), ${s1.errors} errors, p50 ${s1.p50_ms} ms, p99 ${s1.p99_ms} ms`);

      // Phase 2.
      let soak: Record<string, unknown> | null = null;
      if (flags.soakMinutes > 0) {
        const p2 = new Recorder();
        const t0 = performance.now();
        const end2 = t0 + flags.soakMinutes * 60_000;
        const samples: { t: number; rss: number; heap: number; afterGc: number; external: number; tensors: number; index: number | null }[] = [];
        const sample = async () => {
          const m = await scrape(client!);
          if (m.rss === null || m.tensors === null) throw new Error('/metrics has no process_resident_memory_bytes or tfjs_tensors');
          const mb = (x: number | null) => (x ?? NaN) / 2 ** 20;
          samples.push({ t: (performance.now() - t0) / 60_000, rss: mb(m.rss), heap: mb(m.heap), afterGc: mb(m.afterGc), external: mb(m.external), tensors: m.tensors, index: m.index });
        };
        await sample();
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            await new Promise((r) => setTimeout(r, flags.sampleSeconds * 1000));
            if (sampling) {
              await sample();
              const s = samples.at(-1)!;
              log(`soak ${r1(s.t)} min: RSS ${r1(s.rss)} MB (V8 heap ${r1(s.heap)}, after last major GC ${r1(s.afterGc)}, external ${r1(s.external)}), ${s.tensors} tensors, index ${s.index}`);
            }
          }
        })();
        p2.started = t0;
        await runMix({ client, images, concurrency: flags.soakConcurrency, done: () => performance.now() >= end2, recorder: () => p2, random });
        p2.ended = performance.now();
        sampling = false;
        await sampler;
        await sample();
        const t = samples.map((s) => s.t);
        const s2 = p2.summary();
        soak = {
          minutes: flags.soakMinutes,
          concurrency: flags.soakConcurrency,
          samples: samples.length,
          requests: s2.requests,
          rps: s2.rps,
          errors: s2.errors,
          by_status: s2.by_status,
          p50_ms: s2.p50_ms,
          p99_ms: s2.p99_ms,
          rss: series(t, samples.map((s) => s.rss), 'MB'),
          v8_heap: series(t, samples.map((s) => s.heap), 'MB'),
          v8_heap_after_major_gc: series(t, samples.map((s) => s.afterGc), 'MB'),
          external: series(t, samples.map((s) => s.external), 'MB'),
          tensors: series(t, samples.map((s) => s.tensors), 'tensors'),
          index_size: { first: samples[0]!.index, last: samples.at(-1)!.index },
          trace: { columns: ['minutes', 'rss_mb', 'v8_heap_mb', 'v8_heap_after_major_gc_mb', 'external_mb', 'tensors'], rows: samples.map((s) => [r3(s.t), r1(s.rss), r1(s.heap), r1(s.afterGc), r1(s.external), s.tensors]) },
        };
        log(`soak: ${s2.requests} requests, ${s2.errors} errors; RSS ${JSON.stringify(soak['rss'])}; tensors ${JSON.stringify(soak['tensors'])}`);
      }
      result = { phase1: { concurrency: flags.concurrency, warmup_seconds: flags.warmupSeconds, ...s1 }, soak };
    }

    const errorLines = readFileSync(apiLog, 'utf8').split('\n').filter((l) => /"level":"error"/.test(l));
    console.log(
      JSON.stringify({
        bench: 'load',
        mode: flags.fault ? `fault-${flags.fault}` : 'load+soak',
        date: started.toISOString(),
        command: `npm run bench:load${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
        machine: { cpus: availableParallelism(), node: process.version, loadavg: { start: load0.map(r3), end: loadavg().map(r3) } },
        setup,
        ...result,
        api_error_log_lines: errorLines.length,
      }),
    );
    if (errorLines.length > 0) log(`the API logged ${errorLines.length} errors; first: ${errorLines[0]}`);
  } finally {
    client?.close();
    for (const c of children.reverse()) await stopProcess(c);
    await rm(dir, { recursive: true, force: true });
  }
}

type Window = 'before' | 'stopping' | 'outage' | 'restarting' | 'after';

async function faultStore(
  flags: Flags,
  ctx: { client: Client; images: Images; random: () => number; dir: string; s3: S3Proc; onS3: (p: S3Proc) => void },
): Promise<Record<string, unknown>> {
  const { client, images, random } = ctx;
  const windows = new Map<Window, Recorder>((['before', 'stopping', 'outage', 'restarting', 'after'] as Window[]).map((w) => [w, new Recorder()]));
  let window: Window = 'before';
  let stopLoad = false;
  const acked = new Map<number, number>(); // add number → label index
  const retry: { n: number; i: number; due: number }[] = [];
  let nextN = 0;
  let upAt = Infinity;
  let firstOkAfterUp: number | null = null;
  let refusedAfterRecovery = 0;
  const addFor = (n: number, i: number) => ({
    path: '/v1/images',
    body: JSON.stringify({ id: `fault-${n}`, label: images.labels[i], metadata: { n }, base64: images.base64[i] }),
    onAnswer: (a: Answer) => {
      const now = performance.now();
      if (a.status === 201) {
        acked.set(n, i);
        if (now >= upAt && firstOkAfterUp === null) firstOkAfterUp = now;
      } else {
        if (firstOkAfterUp !== null) refusedAfterRecovery++;
        // A client that honours Retry-After.
        retry.push({ n, i, due: now + (a.retryAfter ?? 1) * 1000 });
      }
    },
  });
  const add = () => {
    const k = retry.findIndex((r) => r.due <= performance.now());
    if (k >= 0) {
      const [r] = retry.splice(k, 1);
      return addFor(r!.n, r!.i);
    }
    return addFor(nextN++, Math.floor(random() * images.pngs.length));
  };

  const load = runMix({ client, images, concurrency: flags.concurrency, done: () => stopLoad, recorder: () => windows.get(window)!, random, add });
  const timeline: Record<string, number> = {};
  const t0 = performance.now();
  const at = () => r1((performance.now() - t0) / 1000);
  const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));
  for (const w of windows.values()) w.started = t0;

  await sleep(flags.beforeSeconds);
  window = 'stopping';
  windows.get('before')!.ended = windows.get('stopping')!.started = performance.now();
  timeline['store_stop_sent_s'] = at();
  log('killing the S3 server');
  // SIGKILL, as a crash or a cut link: every connection drops at once (a graceful close would wait for
  // the keep-alive connections the API keeps busy).
  await stopProcess(ctx.s3.child, 'SIGKILL');
  timeline['store_down_s'] = at();
  window = 'outage';
  windows.get('stopping')!.ended = windows.get('outage')!.started = performance.now();
  await sleep(flags.outageSeconds);
  window = 'restarting';
  windows.get('outage')!.ended = windows.get('restarting')!.started = performance.now();
  timeline['store_restart_sent_s'] = at();
  log('restarting the S3 server');
  const s3 = await startS3(join(ctx.dir, 's3'), ctx.s3.port);
  ctx.onS3(s3);
  upAt = performance.now();
  timeline['store_up_s'] = at();
  window = 'after';
  windows.get('restarting')!.ended = windows.get('after')!.started = upAt;
  await sleep(flags.afterSeconds);
  stopLoad = true;
  await load;
  windows.get('after')!.ended = performance.now();
  timeline['load_end_s'] = at();

  // Writes still refused when the load stopped: retried (after Retry-After) until stored.
  for (let attempt = 0; retry.length > 0 && attempt < 20; attempt++) {
    const due = Math.max(0, ...retry.map((r) => r.due - performance.now()));
    await sleep(due / 1000);
    for (const r of retry.splice(0)) {
      const x = addFor(r.n, r.i);
      x.onAnswer((await client.call('POST', x.path, x.body, 'application/json')));
    }
  }

  // Nothing lost: every acknowledged add and every seeded image reads back (and the adds are indexed).
  let lost = 0;
  const lostIds: string[] = [];
  for (const [n] of acked) {
    const a = await client.call('GET', `/v1/images/fault-${n}`, undefined, undefined, true);
    const item = a.status === 200 ? (JSON.parse(a.body) as { metadata?: { n?: number }; indexed?: boolean }) : null;
    if (!item || item.metadata?.n !== n || item.indexed !== true) {
      lost++;
      if (lostIds.length < 10) lostIds.push(`fault-${n} (${a.status})`);
    }
  }
  let seedMissing = 0;
  for (let i = 0; i < images.gallery; i++) if ((await client.call('GET', `/v1/images/seed-${i}`)).status !== 200) seedMissing++;

  const summaries = Object.fromEntries([...windows].map(([w, r]) => [w, r.summary()]));
  const outage = windows.get('outage')!.summary();
  const reads = (['embed', 'search', 'classify'] as const).map((op) => outage.ops[op] as { requests: number; errors: number } | undefined);
  const readTotal = reads.reduce((a, r) => a + (r?.requests ?? 0), 0);
  const readErrors = reads.reduce((a, r) => a + (r?.errors ?? 0), 0);
  const writesDown = outage.ops['gallery_add'] as { requests: number; by_status: Record<string, number> } | undefined;
  const res = {
    fault: {
      outage_seconds: flags.outageSeconds,
      concurrency: flags.concurrency,
      timeline,
      outage_reads: { requests: readTotal, ok: readTotal - readErrors, errors: readErrors },
      outage_writes: { requests: writesDown?.requests ?? 0, by_status: writesDown?.by_status ?? {} },
      write_recovery_ms: firstOkAfterUp === null ? null : r1((firstOkAfterUp as number) - upAt),
      writes_refused_after_recovery: refusedAfterRecovery,
      writes_acknowledged: acked.size,
      writes_never_stored: retry.length,
      lost_writes: lost,
      lost_ids: lostIds,
      seeded_missing: seedMissing,
      windows: summaries,
    },
  };
  log(
    `outage: reads ${readTotal - readErrors}/${readTotal} ok; writes ${JSON.stringify(res.fault.outage_writes.by_status)}; recovery ${res.fault.write_recovery_ms} ms; ` +
      `${acked.size} writes acknowledged, ${lost} lost, ${seedMissing} seeded missing`,
  );
  return res;
}

const argv = process.argv.slice(2);
if (argv[0] === '--s3-child') {
  s3Child(argv[1]!, Number(argv[2])).catch((err: Error) => {
    console.error(`[bench:load] S3 child failed: ${err.stack ?? err.message}`);
    process.exit(1);
  });
} else {
  main(parseFlags(argv)).catch((err: Error) => {
    console.error(`[bench:load] ${err.stack ?? err.message}`);
    process.exit(1);
  });
}
