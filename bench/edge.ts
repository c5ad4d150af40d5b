/**
 * npm run bench:edge — the Cloudflare Workers entry (api/edge/worker.ts) measured in local workerd.
 *
 * Builds the Worker once as `wrangler deploy --dry-run` would upload it (scripts/edge-local.ts buildEdge,
 * into a temp folder) and, in one run:
 *  - bundle: raw and gzip KiB from wrangler's "Total Upload" line (the free plan allows 3 MB compressed);
 *  - cold start to the first embedding, BENCH_COLD_STARTS fresh starts per backend (default 5), wasm and
 *    cpu alternated: `startLocalEdge` (Miniflare + a new workerd process) until it listens, then — after
 *    the bundled checkpoint is published into its local R2 (not counted; `publishMs`) — the first
 *    POST /v1/embeddings until its 200, which pays the isolate's start: backend init, model load and
 *    verification, the gallery-index Durable Object's first open;
 *  - warm latency per image at concurrency 1, timed from this client (workerd's clock inside the Worker
 *    moves in whole ms): a 28×28 Fashion-MNIST PNG and a 640×480 JPEG (q80, sharp-made from one) as the
 *    raw body, BENCH_WARM_REQUESTS (default 200) / BENCH_JPEG_REQUESTS (default 100) per target after
 *    BENCH_WARMUP (default 20) of each, in BENCH_ROUNDS rounds (default 10) whose target order rotates:
 *    edge wasm, edge cpu, and for reference the Node API (startApiServer in this process, tfjs wasm with one
 *    thread on the event loop, SERVING_ENGINE=tfjs — not the default, which serves model.onnx on onnxruntime);
 *  - parity with the Node API on the same bundled checkpoint (memory store): 50 Fashion-MNIST test PNGs
 *    (max abs difference of the embeddings; bar 1e-4) and 20 of them as 640×480 q80 JPEGs (min cosine; bar
 *    0.995), for both edge backends.
 * Also the RSS of each workerd process (the whole local runtime: Worker, Durable Object, local R2,
 * Miniflare's loopback services — not one isolate's heap) once up, after the first embedding, after the
 * warm runs. Prints one JSON line on stdout and a short table on stderr. The Worker logs at LOG_LEVEL=warn (its
 * stdout is this process's). Both edges run in the bench's machine: workerd, Miniflare and the client
 * share its cores.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { startApiServer, type ApiServer } from '../api/server.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createStderrLogger } from '../shared/node/stderr-log.js';
import { createMemoryStore } from '../shared/store/memory-store.js';
import { ensureModelPublished } from '../scripts/bundled-checkpoint.js';
import { buildEdge, startLocalEdge, type LocalEdge } from '../scripts/edge-local.js';
import { png } from '../test/helpers/api-fixtures.js';
import { median } from './stats.js';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const BUNDLED = join(root, 'checkpoints/bundled');
const env = process.env;
const COLD_STARTS = Math.max(1, Number(env.BENCH_COLD_STARTS ?? 5));
const WARM_REQUESTS = Math.max(1, Number(env.BENCH_WARM_REQUESTS ?? 200));
const JPEG_REQUESTS = Math.max(1, Number(env.BENCH_JPEG_REQUESTS ?? 100));
const WARMUP = Math.max(0, Number(env.BENCH_WARMUP ?? 20));
const ROUNDS = Math.max(1, Number(env.BENCH_ROUNDS ?? 10));
const PARITY_PNG = 50;
const PARITY_JPEG = 20;
const ADMIN_TOKEN = 'bench-edge-admin-token-0123456789';

type Backend = 'wasm' | 'cpu';
const BACKENDS: Backend[] = ['wasm', 'cpu'];

const log = (s: string) => void process.stderr.write(s + '\n');
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
/** Nearest-rank percentile. */
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
};

const edgeVars = (backend: Backend): Record<string, string> => ({ VICREG_BACKEND: backend, LOG_LEVEL: 'warn', ADMIN_TOKEN });

interface Embedded {
  status: number;
  ms: number;
  vector?: Float32Array;
  body?: string;
}

async function embed(url: string, body: Uint8Array<ArrayBuffer>, type: string, keep = false): Promise<Embedded> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': type }, body });
  const text = await r.text();
  const ms = performance.now() - t0;
  if (r.status !== 200) return { status: r.status, ms, body: text.slice(0, 300) };
  if (!keep) return { status: 200, ms };
  const j = JSON.parse(text) as { data: { embedding?: number[] }[] };
  return { status: 200, ms, vector: Float32Array.from(j.data[0]!.embedding!) };
}

/** workerd processes that are children of this one (Miniflare spawns one per instance). */
function workerdChildren(): Set<number> {
  const out = new Set<number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && comm.startsWith('workerd')) out.add(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const rssMiB = (pid: number | undefined): number | null => {
  if (pid === undefined) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
};

async function startEdge(buildDir: string, backend: Backend): Promise<{ edge: LocalEdge; pid: number | undefined; upMs: number }> {
  const before = workerdChildren();
  const t0 = performance.now();
  const edge = await startLocalEdge({ buildDir, vars: edgeVars(backend) });
  const upMs = performance.now() - t0;
  const pid = [...workerdChildren()].find((p) => !before.has(p));
  return { edge, pid, upMs };
}

const cosine = (a: Float32Array, b: Float32Array) => {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
};
const maxAbsDiff = (a: Float32Array, b: Float32Array) => {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

async function main(): Promise<void> {
  const started = Date.now();
  const loadStart = loadavg().map((x) => round(x, 2));
  const ds = await loadFashionMnist('test', { limit: Math.max(PARITY_PNG, PARITY_JPEG) });
  const pngs = await Promise.all(Array.from({ length: PARITY_PNG }, (_, i) => png(ds, i)));
  const jpegs = await Promise.all(
    Array.from({ length: PARITY_JPEG }, async (_, i) =>
      new Uint8Array(await sharp(pngs[i]!).resize(640, 480, { fit: 'fill' }).jpeg({ quality: 80 }).toBuffer()),
    ),
  );
  const benchPng = pngs[0]!;
  const benchJpeg = jpegs[0]!;

  const tmp = await mkdtemp(join(tmpdir(), 'bench-edge-'));
  const closers: (() => Promise<void>)[] = [];
  try {
    // --- bundle ---
    const buildDir = join(tmp, 'build');
    const tb = performance.now();
    const uploadLine = await buildEdge(buildDir);
    const buildMs = performance.now() - tb;
    const m = /Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/.exec(uploadLine);
    if (!m) throw new Error(`no "Total Upload … gzip" figure in wrangler's output: ${JSON.stringify(uploadLine)}`);
    const bundle = { rawKiB: Number(m[1]), gzipKiB: Number(m[2]), line: uploadLine.trim(), limitKiB: 3072, underLimit: Number(m[2]) < 3072 };
    log(`bundle: ${bundle.line} (build ${round(buildMs / 1000)} s)`);

    // --- cold starts ---
    type Cold = { upMs: number[]; publishMs: number[]; firstMs: number[]; totalMs: number[]; rssUp: number[]; rssFirst: number[] };
    const cold: Record<Backend, Cold> = {
      wasm: { upMs: [], publishMs: [], firstMs: [], totalMs: [], rssUp: [], rssFirst: [] },
      cpu: { upMs: [], publishMs: [], firstMs: [], totalMs: [], rssUp: [], rssFirst: [] },
    };
    for (let i = 0; i < COLD_STARTS; i++) {
      for (const backend of i % 2 ? [...BACKENDS].reverse() : BACKENDS) {
        const { edge, upMs, pid } = await startEdge(buildDir, backend);
        try {
          const rssUp = rssMiB(pid);
          const tp = performance.now();
          await ensureModelPublished(edge.store, BUNDLED);
          const publishMs = performance.now() - tp;
          const first = await embed(edge.url, benchPng, 'image/png');
          if (first.status !== 200) throw new Error(`cold start ${backend}: first embedding answered ${first.status}: ${first.body}`);
          const c = cold[backend];
          c.upMs.push(upMs);
          c.publishMs.push(publishMs);
          c.firstMs.push(first.ms);
          c.totalMs.push(upMs + first.ms);
          const rssFirst = rssMiB(pid);
          if (rssUp !== null && rssFirst !== null) {
            c.rssUp.push(rssUp);
            c.rssFirst.push(rssFirst);
          }
          log(`cold ${backend} #${i + 1}: workerd up ${round(upMs)} ms, first embedding ${round(first.ms)} ms (publish ${round(publishMs)} ms, not counted)`);
        } finally {
          await edge.close();
        }
      }
    }
    const coldSummary = Object.fromEntries(
      BACKENDS.map((b) => {
        const c = cold[b];
        return [
          b,
          {
            starts: c.totalMs.length,
            upMs: round(median(c.upMs)),
            firstEmbeddingMs: round(median(c.firstMs)),
            totalMs: round(median(c.totalMs)),
            totalRangeMs: [round(Math.min(...c.totalMs)), round(Math.max(...c.totalMs))],
            publishMs: round(median(c.publishMs)),
            // The whole workerd process (Worker, Durable Object, local R2, Miniflare's loopback services), not one isolate's heap.
            ...(c.rssUp.length ? { workerdRssMiB: { up: round(median(c.rssUp)), afterFirst: round(median(c.rssFirst)) } } : {}),
          },
        ];
      }),
    );

    // --- warm latency: edge wasm, edge cpu, Node reference, interleaved ---
    const targets: { name: string; url: string; pid?: number }[] = [];
    for (const backend of BACKENDS) {
      const { edge, pid } = await startEdge(buildDir, backend);
      closers.push(() => edge.close());
      await ensureModelPublished(edge.store, BUNDLED);
      targets.push({ name: `edge-${backend}`, url: edge.url, ...(pid !== undefined ? { pid } : {}) });
    }
    await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
    const nodeStore = createMemoryStore();
    await ensureModelPublished(nodeStore, BUNDLED);
    const node: ApiServer = await startApiServer({
      store: nodeStore,
      port: 0,
      host: '127.0.0.1',
      initBackend: false,
      waitForModel: true,
      env: { ...env, ADMIN_TOKEN },
      settings: { LOG_LEVEL: 'warn', SERVING_ENGINE: 'tfjs' },
      logger: createStderrLogger({ level: 'warn', base: { component: 'bench:edge node-api' } }),
    });
    closers.push(() => node.close());
    targets.push({ name: 'node', url: node.url });

    const lat: Record<string, { png: number[]; jpeg: number[]; errors: number; firstError?: string }> = {};
    for (const t of targets) {
      lat[t.name] = { png: [], jpeg: [], errors: 0 };
      for (let i = 0; i < WARMUP; i++) {
        await embed(t.url, benchPng, 'image/png');
        await embed(t.url, benchJpeg, 'image/jpeg');
      }
    }
    const pngPerRound = Math.ceil(WARM_REQUESTS / ROUNDS);
    const jpegPerRound = Math.ceil(JPEG_REQUESTS / ROUNDS);
    for (let r = 0; r < ROUNDS; r++) {
      const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
      for (const t of order) {
        const l = lat[t.name]!;
        for (const [body, type, n, into] of [
          [benchPng, 'image/png', pngPerRound, l.png],
          [benchJpeg, 'image/jpeg', jpegPerRound, l.jpeg],
        ] as const) {
          for (let i = 0; i < n; i++) {
            const e = await embed(t.url, body, type);
            if (e.status === 200) into.push(e.ms);
            else {
              l.errors++;
              l.firstError ??= `${e.status} ${e.body}`;
            }
          }
        }
      }
      log(`warm round ${r + 1}/${ROUNDS}: ` + targets.map((t) => `${t.name} png p50 ${round(median(lat[t.name]!.png.slice(-pngPerRound)))} ms`).join(', '));
    }
    const warm = Object.fromEntries(
      targets.map((t) => {
        const l = lat[t.name]!;
        return [
          t.name,
          {
            png28: { n: l.png.length, p50ms: round(pct(l.png, 0.5), 2), p90ms: round(pct(l.png, 0.9), 2) },
            jpeg640x480: { n: l.jpeg.length, p50ms: round(pct(l.jpeg, 0.5), 2), p90ms: round(pct(l.jpeg, 0.9), 2) },
            errors: l.errors,
            ...(l.firstError ? { firstError: l.firstError } : {}),
            ...(t.pid !== undefined ? { workerdRssMiB: rssMiB(t.pid) } : {}),
          },
        ];
      }),
    );

    // --- parity with the Node API ---
    const nodePng: Embedded[] = [];
    for (const b of pngs) nodePng.push(await embed(node.url, b, 'image/png', true));
    const nodeJpeg: Embedded[] = [];
    for (const b of jpegs) nodeJpeg.push(await embed(node.url, b, 'image/jpeg', true));
    const parity: Record<string, unknown> = {};
    for (const t of targets.filter((x) => x.name !== 'node')) {
      let maxAbs = 0, pngFailed = 0, minCos = Infinity, jpegMaxAbs = 0, jpegFailed = 0;
      for (let i = 0; i < pngs.length; i++) {
        const e = await embed(t.url, pngs[i]!, 'image/png', true);
        const n = nodePng[i]!;
        if (!e.vector || !n.vector) pngFailed++;
        else maxAbs = Math.max(maxAbs, maxAbsDiff(e.vector, n.vector));
      }
      for (let i = 0; i < jpegs.length; i++) {
        const e = await embed(t.url, jpegs[i]!, 'image/jpeg', true);
        const n = nodeJpeg[i]!;
        if (!e.vector || !n.vector) jpegFailed++;
        else {
          minCos = Math.min(minCos, cosine(e.vector, n.vector));
          jpegMaxAbs = Math.max(jpegMaxAbs, maxAbsDiff(e.vector, n.vector));
        }
      }
      parity[t.name] = {
        png: { n: pngs.length, failed: pngFailed, maxAbsDiff: Number(maxAbs.toPrecision(3)), pass: pngFailed === 0 && maxAbs <= 1e-4 },
        jpeg640x480q80: { n: jpegs.length, failed: jpegFailed, minCosine: Number(minCos.toFixed(6)), maxAbsDiff: Number(jpegMaxAbs.toPrecision(3)), pass: jpegFailed === 0 && minCos >= 0.995 },
      };
    }

    const wranglerVersion = (JSON.parse(readFileSync(join(root, 'node_modules/wrangler/package.json'), 'utf8')) as { version: string }).version;
    const miniflareVersion = (JSON.parse(readFileSync(join(root, 'node_modules/miniflare/package.json'), 'utf8')) as { version: string }).version;
    const manifest = JSON.parse(readFileSync(join(BUNDLED, 'manifest.json'), 'utf8')) as { version: string };
    const result = {
      bench: 'edge',
      date: new Date(started).toISOString(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, loadavg: { start: loadStart, end: loadavg().map((x) => round(x, 2)) } },
      wrangler: wranglerVersion,
      miniflare: miniflareVersion,
      model: manifest.version,
      bundle: { rawKiB: bundle.rawKiB, gzipKiB: bundle.gzipKiB, limitKiB: bundle.limitKiB, underLimit: bundle.underLimit },
      coldStart: coldSummary,
      warm,
      warmSetup: { concurrency: 1, warmup: WARMUP, rounds: ROUNDS, node: 'startApiServer in this process, tfjs wasm 1 thread on the event loop (SERVING_ENGINE=tfjs)' },
      parity,
      seconds: round((Date.now() - started) / 1000),
    };

    log('');
    log(`bundle ${bundle.rawKiB} KiB raw / ${bundle.gzipKiB} KiB gzip (limit 3072 KiB gzip: ${bundle.underLimit ? 'under' : 'OVER'})`);
    log('cold start (median of ' + COLD_STARTS + ')   workerd up   first embedding   total');
    for (const b of BACKENDS) {
      const c = coldSummary[b] as { upMs: number; firstEmbeddingMs: number; totalMs: number };
      log(`  ${b.padEnd(28)} ${String(c.upMs).padStart(8)} ms ${String(c.firstEmbeddingMs).padStart(12)} ms ${String(c.totalMs).padStart(9)} ms`);
    }
    log('warm c=1                      png28 p50/p90      jpeg640x480 p50/p90');
    for (const t of targets) {
      const w = warm[t.name] as { png28: { p50ms: number; p90ms: number }; jpeg640x480: { p50ms: number; p90ms: number }; errors: number };
      log(`  ${t.name.padEnd(26)} ${`${w.png28.p50ms} / ${w.png28.p90ms} ms`.padStart(18)} ${`${w.jpeg640x480.p50ms} / ${w.jpeg640x480.p90ms} ms`.padStart(22)}${w.errors ? `  (${w.errors} errors)` : ''}`);
    }
    for (const [name, p] of Object.entries(parity) as [string, { png: { maxAbsDiff: number; pass: boolean }; jpeg640x480q80: { minCosine: number; pass: boolean } }][]) {
      log(`parity ${name} vs node: PNG max |Δ| ${p.png.maxAbsDiff} (≤ 1e-4: ${p.png.pass}), JPEG min cosine ${p.jpeg640x480q80.minCosine} (≥ 0.995: ${p.jpeg640x480q80.pass})`);
    }
    log(`${result.seconds} s`);
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    for (const close of closers.reverse()) await close().catch((err: unknown) => log(`close failed: ${(err as Error).message}`));
    if (existsSync(tmp)) await rm(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:edge failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);

