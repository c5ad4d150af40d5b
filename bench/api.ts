/**
 * npm run bench:api — API throughput against the bare model.
 *
 * Starts a local S3 (temp folder), publishes a checkpoint, serves the API on loopback, and drives it from
 * a worker thread (so the load generator does not share the server's event loop) with raw PNG
 * Fashion-MNIST images at concurrency 1, 8 and 32. Prints embeddings/s and p50/p99 latency per level,
 * the bare model's forward throughput at the API's batch size, and a last line of JSON with the ratio.
 * The bar: at concurrency 32 the API reaches ≥ 70% of the bare model's throughput (overhead < 30%). This
 * machine's speed jumps by a third within a minute, so the top level is sampled in BENCH_ROUNDS short
 * rounds (default 10), each a fresh bare measurement of every candidate setup (BENCH_BARE_SECONDS each,
 * default 1) followed by BENCH_TOP_SECONDS (default 3) of API load. Before the rounds, unmeasured: 5 s of
 * every bare setup, then BENCH_WARMUP_SECONDS (default 30) of API load at that concurrency (JIT warm-up).
 * The baseline is the setup that was fastest over the run. Printed: the median of the rounds' paired ratios
 * (API / that setup measured just before it), the same against whichever setup was fastest in each round
 * (ratioVsBestOfEachRound), ratioOfMedians, ratioPooled (all API seconds over all of the setup's seconds,
 * sampled over the same minutes), and both per CPU second the hypervisor left this VM (perUnstolenCpu: its
 * steal share swings from 0 to over half within a minute); `pass` needs both the median paired ratio and
 * the pooled ratio at the bar. The access log is on, written to a file; the load generator is one thread for the whole run (a fresh one per round would JIT-compile
 * its code inside the measured window).
 *
 * Options (env): BENCH_SECONDS (per level, default 6), BENCH_LEVELS (default 1,8,32), BATCH_MAX,
 * BATCH_WAIT_MS, MODEL_THREAD (on|off, default on), MODEL_THREADS (pool size, default: cores),
 * MODEL_THREAD_WASM_THREADS (default 1), BENCH_MODEL=fixture to force the small stand-in network. The bare
 * setups: the model on this thread (all cores), one model thread with 2 wasm threads, and a pool of model
 * threads (one per core) kept busy with a batch each (the first figures also try 1 wasm thread).
 */
import * as tf from '@tensorflow/tfjs';
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { buildCheckpointFiles } from '../shared/checkpoint/format.js';
import { publishCheckpoint } from '../shared/checkpoint/publish.js';
import { modelToFiles } from '../shared/checkpoint/model-files.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { servingForward, type ServingForward } from '../shared/model/serving-graph.js';
import { startModelThread } from '../shared/node/model-thread-client.js';
import { bareThreadThroughput, medianOf } from './bare.js';
import { startModelThreadPool } from '../shared/node/model-thread-pool.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { startLocalS3 } from '../shared/node/local-s3.js';
import { cpuShares, procStatFields, statField, systemCpu, type SystemCpu } from '../shared/node/proc-stat.js';
import { createJsonLogger } from '../shared/log.js';
import { startApiServer } from '../api/server.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const LEVELS = (process.env.BENCH_LEVELS ?? '1,8,32').split(',').map(Number);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 10));
// The top level's rounds are short and many, so the API and the bare setups are sampled over the same
// minutes (this machine's speed jumps by a third within a minute): API seconds and bare seconds per setup.
const TOP_SECONDS = Number(process.env.BENCH_TOP_SECONDS ?? 3);
const BARE_SECONDS = Number(process.env.BENCH_BARE_SECONDS ?? 1);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 30);
const BATCH_MAX = Number(process.env.BATCH_MAX ?? 64);
const BATCH_WAIT_MS = Number(process.env.BATCH_WAIT_MS ?? 5);
const MODEL_THREAD = process.env.MODEL_THREAD === 'off' ? 'off' : 'on';
const MODEL_THREAD_WASM_THREADS = Number(process.env.MODEL_THREAD_WASM_THREADS ?? 1);
const MODEL_THREADS = Number(process.env.MODEL_THREADS ?? availableParallelism());

/** The project's default network if the model module is there; else a small stand-in conv net. */
async function backbone(): Promise<{ model: tf.LayersModel; name: string; dim: number }> {
  if (process.env.BENCH_MODEL !== 'fixture') {
    try {
      const mod = (await import('../shared/model/vicreg-net.js' as string)) as {
        createVicregNet: (cfg: unknown, seed: number) => { toLayersModel(): tf.LayersModel };
      };
      const { DEFAULT_CPU_MODEL, representationDim } = await import('../shared/model/config.js');
      const model = mod.createVicregNet(DEFAULT_CPU_MODEL, 0).toLayersModel();
      return { model, name: 'default CPU network (ResNet-mini, untrained weights)', dim: representationDim(DEFAULT_CPU_MODEL.backbone) };
    } catch {
      // fall through to the stand-in
    }
  }
  const input = tf.input({ shape: [28, 28, 1] });
  let h = tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input) as tf.SymbolicTensor;
  h = tf.layers.conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.conv2d({ filters: 64, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.conv2d({ filters: 128, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(h) as tf.SymbolicTensor;
  const out = tf.layers.globalAveragePooling2d({}).apply(h) as tf.SymbolicTensor;
  return { model: tf.model({ inputs: input, outputs: out }), name: 'stand-in conv net 16-32-64-128 (shared/model not available)', dim: 128 };
}

/** The forward pass the API serves with (shared/model/serving-graph.ts: the compiled graph when it agrees). */
function bareThroughput(net: ServingForward, batch: number, seconds: number, onStart?: () => void): number {
  const x = tf.randomNormal([batch, 28, 28, 1]) as tf.Tensor4D;
  for (let i = 0; i < 3; i++) tf.dispose(net.run(x).dataSync());
  let n = 0;
  onStart?.();
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    const y = net.run(x);
    y.dataSync();
    y.dispose();
    n += batch;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  x.dispose();
  return rate;
}


// The load generator: plain JS in a worker thread, one keep-alive TCP connection per concurrent client,
// requests pre-encoded and responses parsed only as far as their length. On 2 shared cores every cycle the
// client spends is taken from the server and counted as API overhead: undici's fetch cost ~3.5 ms of CPU
// per request here, node:http's client ~0.25 ms, this ~0.1 ms.
const LOADGEN = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const net = require('node:net');
const { url, images } = workerData;
// This thread's CPU time (Linux), so the load generator's share of the 2 cores can be told apart.
function threadCpuMs() {
  try {
    const s = fs.readFileSync('/proc/thread-self/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch { return NaN; }
}
const target = new URL(url);
const requests = images.map((b) => Buffer.concat([
  Buffer.from('POST ' + target.pathname + ' HTTP/1.1\\r\\nHost: ' + target.host + '\\r\\nContent-Type: image/png\\r\\nContent-Length: ' + b.length + '\\r\\n\\r\\n', 'latin1'),
  Buffer.from(b),
]));
/** One connection; send() resolves with the status once the whole response (Content-Length or chunked) is in. */
function connection() {
  const sock = net.connect({ host: target.hostname, port: Number(target.port) });
  sock.setNoDelay(true);
  let buf = Buffer.alloc(0);
  let waiting = null;
  const fail = (e) => { if (waiting) { const w = waiting; waiting = null; w.reject(e); } };
  const parse = () => {
    if (!waiting) return;
    const he = buf.indexOf('\\r\\n\\r\\n');
    if (he < 0) return;
    const head = buf.toString('latin1', 0, he);
    const status = Number(head.slice(9, 12));
    const len = /\\r\\ncontent-length: *(\\d+)/i.exec(head);
    let end;
    if (len) end = he + 4 + Number(len[1]);
    else {
      const z = buf.indexOf('\\r\\n0\\r\\n\\r\\n', he);
      if (z < 0) return;
      end = z + 7;
    }
    if (buf.length < end) return;
    buf = buf.subarray(end);
    const w = waiting;
    waiting = null;
    w.resolve(status);
  };
  sock.on('data', (d) => { buf = buf.length ? Buffer.concat([buf, d]) : d; parse(); });
  sock.on('error', fail);
  sock.on('close', () => fail(new Error('connection closed')));
  return {
    send: (req) => new Promise((resolve, reject) => { waiting = { resolve, reject }; sock.write(req); }),
    close: () => sock.destroy(),
  };
}
// One run per message, so the thread (and its JIT-compiled code) lives across levels and rounds: a fresh
// thread per round would compile its code on V8's helper threads inside the measured window.
parentPort.on('message', async ({ concurrency, seconds, warmupSeconds }) => {
  const lat = [];
  let errors = 0, done = 0, cpuAtWarm = NaN;
  setTimeout(() => { cpuAtWarm = threadCpuMs(); }, warmupSeconds * 1000);
  const tWarm = performance.now() + warmupSeconds * 1000;
  const tEnd = tWarm + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
    let conn = connection();
    let i = w;
    for (;;) {
      const now = performance.now();
      if (now >= tEnd) break;
      const req = requests[i++ % requests.length];
      const t0 = performance.now();
      try {
        if ((await conn.send(req)) !== 200) errors++;
      } catch {
        errors++;
        conn.close();
        conn = connection();
      }
      const t1 = performance.now();
      if (t0 >= tWarm && t1 <= tEnd) { lat.push(t1 - t0); done++; }
    }
    conn.close();
  }));
  const cpuMs = threadCpuMs() - cpuAtWarm;
  parentPort.postMessage({ lat, errors, done, cpuMs });
});
`;

type LoadResult = { lat: number[]; errors: number; done: number; cpuMs: number };

/** The load generator thread: `run` drives `concurrency` clients for `seconds` after `warmupSeconds`. */
function startLoadGenerator(url: string, images: Uint8Array[]) {
  const w = new Worker(LOADGEN, { eval: true, workerData: { url, images } });
  let failed: Error | null = null;
  let current: { resolve: (r: LoadResult) => void; reject: (e: Error) => void } | null = null;
  w.on('message', (m) => current?.resolve(m as LoadResult));
  w.on('error', (err) => {
    failed = err;
    current?.reject(err);
  });
  return {
    run: (concurrency: number, seconds: number, warmupSeconds: number) =>
      new Promise<LoadResult>((resolve, reject) => {
        if (failed) return reject(failed);
        current = { resolve, reject };
        w.postMessage({ concurrency, seconds, warmupSeconds });
      }),
    close: () => w.terminate(),
  };
}

/** BENCH_PROFILE=prefix: a V8 CPU profile of the server's (main) thread per level, for chrome://inspect. */
async function startProfile(): Promise<(file: string) => Promise<void>> {
  const { Session } = await import('node:inspector/promises');
  const { writeFile } = await import('node:fs/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async (file) => {
    const { profile } = await session.post('Profiler.stop');
    await writeFile(file, JSON.stringify(profile));
    session.disconnect();
  };
}

/** The setup whose rates over the rounds score highest by `stat` (mean: the pooled rate, as rounds are equally long; or median). */
function fastestSetup(bySetup: Record<string, number>[], stat: (xs: number[]) => number): string {
  const score = (k: string) => stat(bySetup.map((r) => r[k]!));
  return Object.keys(bySetup[0]!).reduce((a, b) => (score(b) > score(a) ? b : a));
}
const meanOf = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * A measurement's rate with the machine's CPU shares over its timed window (`measure` calls `onStart` when
 * the window opens). This VM's hypervisor takes from 0 to over half of its CPU time for other guests
 * (steal, in /proc/stat) from one second to the next; that is part of the bench's noise (the machine's
 * speed also swings with no steal at all).
 */
async function withCpuShares(measure: (onStart: () => void) => number | Promise<number>): Promise<{ rate: number; shares: SystemCpu | null }> {
  let start: SystemCpu | null = null;
  const rate = await measure(() => {
    start = systemCpu();
  });
  const end = systemCpu();
  return { rate, shares: start && end ? cpuShares(start, end) : null };
}

const roundShares = (s: SystemCpu): SystemCpu => ({ busy: +s.busy.toFixed(3), idle: +s.idle.toFixed(3), steal: +s.steal.toFixed(3) });

/** A rate per CPU second the VM actually had: the rate over the share not stolen by the hypervisor. */
const unstolen = (rate: number, shares: SystemCpu | null): number => (shares ? rate / Math.max(0.05, 1 - shares.steal) : rate);

/** CPU time (user + system, ms) from a Linux /proc task stat file; NaN where there is none. */
function statCpuMs(path: string): number {
  const f = procStatFields(path);
  // utime and stime, in clock ticks of 10 ms.
  return f ? (statField(f, 14) + statField(f, 15)) * 10 : NaN;
}

/** CPU ms of this process's main thread. */
const mainThreadCpuMs = (): number => statCpuMs(`/proc/self/task/${process.pid}/stat`);

/** CPU ms per thread id (Linux), for BENCH_THREADS=1 diagnostics. */
function threadCpu(): Map<string, number> {
  let tids: string[] = [];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    // not Linux
  }
  return new Map(tids.map((tid) => [tid, statCpuMs(`/proc/self/task/${tid}/stat`)]));
}

/** A thread's name (comm), so the CPU table can tell V8 helpers, libuv workers and model threads apart. */
function threadName(tid: string): string {
  try {
    return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
  } catch {
    return '?';
  }
}

/** Sums and counts from /metrics: batch sizes, forward-pass seconds, and server-side embeddings latency. */
function batchStats(metrics: string): { sum: number; count: number; fwdSum: number; fwdCount: number; srvSum: number; srvCount: number } {
  const num = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? 0);
  const labelled = (name: string) =>
    [...metrics.matchAll(new RegExp(`^${name}\\{[^}]*route="/v1/embeddings"[^}]*\\} (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
  return {
    sum: num('embed_batch_size_sum'),
    count: num('embed_batch_size_count'),
    fwdSum: num('embed_batch_duration_seconds_sum'),
    fwdCount: num('embed_batch_duration_seconds_count'),
    srvSum: labelled('http_request_duration_seconds_sum'),
    srvCount: labelled('http_request_duration_seconds_count'),
  };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function main() {
  const loadAtStart = loadavg();
  const backend = await initNodeBackend({ log: () => {} });
  const dir = await mkdtemp(join(tmpdir(), 'vicreg-bench-'));
  const s3 = await startLocalS3({ dir });
  try {
    const { model, name, dim } = await backbone();
    const { files, manifest } = await buildCheckpointFiles({
      model,
      manifest: {
        parent: null,
        state: 'active-candidate',
        training: { config: { bench: true }, seed: 0, steps: 0, epochs: 0, wallSeconds: 0, command: 'npm run bench:api' },
        dataset: { name: 'none', fingerprint: '0'.repeat(64), n: 0 },
        preprocessing: { inputSize: 28, channels: 1, mean: [0.286], std: [0.353], resize: 'fill' },
        representationDim: dim,
        backend: tf.getBackend(),
        metrics: {},
      },
    });
    await publishCheckpoint(s3.store, files, { activate: true });
    console.log(`backend ${backend.detail}; model: ${name}; checkpoint ${manifest.version}`);

    const net = servingForward(model, [28, 28, 1]);
    const bareMain = bareThroughput(net, BATCH_MAX, 4);
    console.log(`bare model forward (${net.path}) on this thread (${backend.detail}), batch ${BATCH_MAX}: ${bareMain.toFixed(0)} img/s`);
    // The same network in a fresh model thread with 1 and 2 wasm threads (on a loaded machine fewer
    // threads can be faster). The baseline is the best of the three: the strictest comparison.
    const threadFiles = { ...(await modelToFiles(model)), inputShape: [28, 28, 1] as [number, number, number], dimension: dim };
    const bareThread: Record<string, number> = {};
    for (const threads of [1, 2]) {
      const t = await startModelThread(threadFiles, { backend: 'wasm', threads, env: {} });
      bareThread[`wasm${threads}`] = Math.round(await bareThreadThroughput(t, BATCH_MAX, 4));
      await t.close();
      console.log(`bare model forward in a model thread (${t.backend}), batch ${BATCH_MAX}: ${bareThread[`wasm${threads}`]} img/s`);
    }
    // A pool (one thread per core, 1 wasm thread each), one batch per thread at a time: what the API's
    // pool could do with no HTTP or decoding at all.
    const poolSize = availableParallelism();
    const pool = poolSize > 1 ? await startModelThreadPool(threadFiles, poolSize, { backend: 'wasm', threads: 1, env: {} }) : null;
    if (pool) {
      bareThread[`pool${poolSize}xWasm1`] = Math.round(await bareThreadThroughput(pool, BATCH_MAX, 4, poolSize));
      console.log(`bare model forward in a pool (${pool.backend}), batch ${BATCH_MAX}: ${bareThread[`pool${poolSize}xWasm1`]} img/s`);
    }
    const bare = Math.max(bareMain, ...Object.values(bareThread));
    const bareSmall = Object.fromEntries([1, 8, 32].map((b) => [b, Math.round(bareThroughput(net, b, 1.5))]));
    console.log(`bare model forward at batch 1 / 8 / 32: ${bareSmall[1]} / ${bareSmall[8]} / ${bareSmall[32]} img/s`);
    // Right before each round at the top concurrency, every setup that can be the best is measured again
    // (the machine's speed drifts); the one fastest over the run is the baseline. The 2-wasm-thread model
    // thread stays up between rounds (idle while the API is measured), so it is as warm as the pool.
    const wasm2 = await startModelThread(threadFiles, { backend: 'wasm', threads: 2, env: {} });
    type Setups = Record<string, { rate: number; shares: SystemCpu | null }>;
    const bareAgain = async (seconds: number): Promise<Setups> => {
      const by: Setups = {};
      if (pool) by.pool = await withCpuShares((onStart) => bareThreadThroughput(pool, BATCH_MAX, seconds, poolSize, onStart));
      by.modelThread = await withCpuShares((onStart) => bareThreadThroughput(wasm2, BATCH_MAX, seconds, 1, onStart));
      by.mainThread = await withCpuShares((onStart) => bareThroughput(net, BATCH_MAX, seconds, onStart));
      return by;
    };

    const ds = await loadFashionMnist('test', { limit: 256 });
    const images = await Promise.all(
      Array.from({ length: ds.n }, async (_, i) =>
        new Uint8Array(await sharp(Buffer.from(ds.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer()),
      ),
    );
    const accessLog = openSync(join(dir, 'api.log'), 'a');
    const api = await startApiServer({
      env: {},
      store: s3.store,
      port: 0,
      initBackend: false,
      waitForModel: true,
      // The access log stays on, as in a default deployment: one JSON line per request, written synchronously
      // to a file (as console.log does when stdout is a file).
      logger: createJsonLogger({ level: 'info', write: (line) => writeSync(accessLog, line + '\n') }),
      settings: { BATCH_MAX, BATCH_WAIT_MS, POLL_INTERVAL_MS: 60_000, MODEL_THREAD, MODEL_THREADS, MODEL_THREAD_WASM_THREADS },
    });
    const load = startLoadGenerator(`${api.url}/v1/embeddings`, images);
    type Level = { eventLoopDelayMs: { mean: number; p99: number }; meanBatch: number; embeddingsPerSec: number; p50ms: number; p99ms: number; errors: number; clientMeanMs: number; serverMeanMs: number; forwardMeanMs: number; cpuMsPerEmbedding: Record<string, number>; machineCpuShares: SystemCpu | null };
    const results: Record<string, Level> = {};
    const measureLevel = async (c: number, seconds = SECONDS, warmupSeconds = 1): Promise<Level> => {
      const before = batchStats(await (await fetch(`${api.url}/metrics`)).text());
      const stopProfile = process.env.BENCH_PROFILE ? await startProfile() : null;
      // CPU over the measured window (after the 1 s warm-up): whole process, main thread, load generator.
      let cpu0 = process.cpuUsage();
      let main0 = mainThreadCpuMs();
      let threads0 = threadCpu();
      let machine0 = systemCpu();
      const warm = setTimeout(() => {
        cpu0 = process.cpuUsage();
        main0 = mainThreadCpuMs();
        threads0 = threadCpu();
        machine0 = systemCpu();
      }, warmupSeconds * 1000);
      const lag = monitorEventLoopDelay({ resolution: 1 });
      lag.enable();
      const r = await load.run(c, seconds, warmupSeconds);
      const machine1 = systemCpu();
      lag.disable();
      clearTimeout(warm);
      const cpu = process.cpuUsage(cpu0);
      const perEmb = (ms: number) => +(ms / Math.max(1, r.done)).toFixed(3);
      const processMs = (cpu.user + cpu.system) / 1000;
      const mainMs = mainThreadCpuMs() - main0;
      if (process.env.BENCH_THREADS === '1') {
        const busy = [...threadCpu()].map(([tid, ms]) => [tid, ms - (threads0.get(tid) ?? 0)] as const).filter(([, ms]) => ms > 0);
        console.log(`CPU ms by thread over ${seconds} s: ${busy.sort((a, b) => b[1] - a[1]).map(([t, ms]) => `${t}${t === String(process.pid) ? '(main)' : `(${threadName(t)})`}:${ms}`).join(' ')}`);
      }
      if (stopProfile) await stopProfile(`${process.env.BENCH_PROFILE}-c${c}.cpuprofile`);
      const after = batchStats(await (await fetch(`${api.url}/metrics`)).text());
      const meanBatch = (after.sum - before.sum) / Math.max(1, after.count - before.count);
      // Where a request's time goes: inside the server (handler start to response) vs the whole round trip.
      const serverMeanMs = (1000 * (after.srvSum - before.srvSum)) / Math.max(1, after.srvCount - before.srvCount);
      const forwardMeanMs = (1000 * (after.fwdSum - before.fwdSum)) / Math.max(1, after.fwdCount - before.fwdCount);
      const rate = r.done / seconds;
      const level = {
        meanBatch: +meanBatch.toFixed(1),
        embeddingsPerSec: Math.round(rate),
        p50ms: +pct(r.lat, 50).toFixed(2),
        p99ms: +pct(r.lat, 99).toFixed(2),
        errors: r.errors,
        clientMeanMs: +(r.lat.reduce((a, b) => a + b, 0) / Math.max(1, r.lat.length)).toFixed(2),
        serverMeanMs: +serverMeanMs.toFixed(2),
        forwardMeanMs: +forwardMeanMs.toFixed(2),
        // The server's event loop: how late a 1 ms timer fired (ms), mean and p99.
        eventLoopDelayMs: { mean: +(lag.mean / 1e6).toFixed(2), p99: +(lag.percentile(99) / 1e6).toFixed(2) },
        // Where the cores went, per embedding: the server's main thread (HTTP, decode, batching), the load
        // generator, and the rest (model threads, libuv and V8 helpers).
        cpuMsPerEmbedding: { process: perEmb(processMs), serverMainThread: perEmb(mainMs), loadGenerator: perEmb(r.cpuMs), modelAndOther: perEmb(processMs - mainMs - r.cpuMs) },
        // The whole machine over the window: busy, idle (cores the API left unused) and stolen by the hypervisor.
        machineCpuShares: machine0 && machine1 ? roundShares(cpuShares(machine0, machine1)) : null,
      };
      console.log(`concurrency ${String(c).padStart(2)}: ${rate.toFixed(0).padStart(5)} embeddings/s  p50 ${pct(r.lat, 50).toFixed(1)} ms  p99 ${pct(r.lat, 99).toFixed(1)} ms  errors ${r.errors}  mean batch ${meanBatch.toFixed(1)}  mean ms: client ${level.clientMeanMs}, server ${level.serverMeanMs}, forward ${level.forwardMeanMs}; event-loop delay ${JSON.stringify(level.eventLoopDelayMs)}  CPU ms/embedding ${JSON.stringify(level.cpuMsPerEmbedding)}`);
      return level;
    };
    const top = Math.max(...LEVELS);
    type Round = {
      bareImgPerSec: number;
      bareBySetup: Record<string, number>;
      embeddingsPerSec: number;
      // Against whichever setup measured fastest in this round (ratioVsBestOfEachRound's rounds).
      ratio: number;
      // The same, per CPU second the hypervisor left this VM (rate / (1 − steal share) over each window).
      unstolen: { bareBySetup: Record<string, number>; embeddingsPerSec: number; ratio: number };
      stealShare: { bareBySetup: Record<string, number>; api: number };
      apiIdleShare: number;
    };
    const rounds: Round[] = [];
    const topLevels: Level[] = [];
    try {
      for (const c of LEVELS.filter((l) => l !== top)) results[`c${c}`] = await measureLevel(c);
      // The top level in rounds, each right after a fresh bare measurement of every setup: the API is
      // compared with the model as fast as the machine was at that moment, and the median round is reported.
      // Not measured: the JIT warm-up at the top level, as in a server that has run a while. V8 keeps
      // optimising new code paths for tens of seconds: with a 4-s warm-up, the helper threads' CPU (TurboFan
      // compiling, in perf) fell from ~1.1 s in the first 3-s round to ~0.3 s in the sixth.
      // The bare setups first: 15 s without requests let V8 drop the API's optimised code again (round 1
      // after it measured 0.55 with ~0.7 s of helper-thread CPU; later rounds ~0.3 s).
      await bareAgain(5);
      await load.run(top, WARMUP_SECONDS, 0);
      for (let i = 0; i < ROUNDS; i++) {
        const setups = await bareAgain(BARE_SECONDS);
        const level = await measureLevel(top, TOP_SECONDS, 0.5);
        const bySetup = (f: (m: Setups[string]) => number) => Object.fromEntries(Object.entries(setups).map(([k, m]) => [k, f(m)]));
        const bareBySetup = bySetup((m) => Math.round(m.rate));
        const bareUnstolen = bySetup((m) => Math.round(unstolen(m.rate, m.shares)));
        const bareNow = Math.max(...Object.values(bareBySetup));
        const apiUnstolen = Math.round(unstolen(level.embeddingsPerSec, level.machineCpuShares));
        const round: Round = {
          bareImgPerSec: bareNow,
          bareBySetup,
          embeddingsPerSec: level.embeddingsPerSec,
          ratio: +(level.embeddingsPerSec / bareNow).toFixed(3),
          unstolen: { bareBySetup: bareUnstolen, embeddingsPerSec: apiUnstolen, ratio: +(apiUnstolen / Math.max(...Object.values(bareUnstolen))).toFixed(3) },
          stealShare: { bareBySetup: bySetup((m) => +(m.shares?.steal ?? 0).toFixed(3)), api: level.machineCpuShares?.steal ?? 0 },
          apiIdleShare: level.machineCpuShares?.idle ?? 0,
        };
        rounds.push(round);
        console.log(`round ${i + 1}: bare ${JSON.stringify(bareBySetup)} img/s, API ${level.embeddingsPerSec}/s → ratio ${round.ratio}; steal ${JSON.stringify(round.stealShare)}, API idle ${round.apiIdleShare} → per unstolen CPU second ${round.unstolen.ratio}`);
        topLevels.push(level);
      }
    } finally {
      await load.close();
      await api.close();
      closeSync(accessLog);
      await pool?.close();
      await wasm2.close();
      net.dispose();
      model.dispose();
    }
    // The setup that was fastest over the whole run (by its mean over the rounds), and each round's API rate
    // over that setup's rate measured just before it. Re-choosing the fastest setup in every round instead
    // takes the maximum of three noisy 1-s samples, which overstates the bare model (0.03–0.07 lower medians
    // than this in the fourth session's runs of 2026-12-01); it is still printed, as ratioVsBestOfEachRound.
    const bestSetup = fastestSetup(rounds.map((r) => r.bareBySetup), meanOf);
    const medianFastest = fastestSetup(rounds.map((r) => r.bareBySetup), medianOf);
    const pairedRatios = rounds.map((r) => r.embeddingsPerSec / r.bareBySetup[bestSetup]!);
    const ratio = medianOf(pairedRatios);
    const ratioEachRound = medianOf(rounds.map((r) => r.ratio));
    // The table's top level is a real round's: the lower middle one by paired ratio.
    const order = pairedRatios.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
    const middle = order[Math.floor((rounds.length - 1) / 2)]![1];
    const median = rounds[middle]!;
    results[`c${top}`] = topLevels[middle]!;
    const pooled = meanOf(rounds.map((r) => r.embeddingsPerSec)) / meanOf(rounds.map((r) => r.bareBySetup[bestSetup]!));
    const unstolenRatio = medianOf(rounds.map((r) => r.unstolen.embeddingsPerSec / r.unstolen.bareBySetup[bestSetup]!));
    const unstolenPooled = meanOf(rounds.map((r) => r.unstolen.embeddingsPerSec)) / meanOf(rounds.map((r) => r.unstolen.bareBySetup[bestSetup]!));
    console.log(
      JSON.stringify({
        bench: 'api',
        backend: tf.getBackend(),
        model: name,
        forward: net.path,
        batchMax: BATCH_MAX,
        batchWaitMs: BATCH_WAIT_MS,
        accessLogLines: readFileSync(join(dir, 'api.log'), 'utf8').split('\n').filter((l) => l.includes('"msg":"request"')).length,
        modelThread: MODEL_THREAD === 'on' ? { threads: MODEL_THREADS, wasmThreads: MODEL_THREAD_WASM_THREADS } : 'off',
        // 1/5/15-minute load averages at start and end (2 cores: above 2 means other jobs shared the CPU).
        loadavg: { start: loadAtStart.map((x) => +x.toFixed(2)), end: loadavg().map((x) => +x.toFixed(2)) },
        bareImgPerSec: Math.round(bare),
        bareImgPerSecBySetup: { mainThread: Math.round(bareMain), modelThread: bareThread },
        bareImgPerSecByBatch: bareSmall,
        levels: results,
        rounds,
        // The setup the ratios below compare with: the fastest over the run.
        bestSetup,
        // Median over the rounds of (API at the top concurrency) / (that setup measured just before it).
        ratioAtMaxConcurrency: +ratio.toFixed(3),
        // The same against whichever setup measured fastest in each round (the maximum of three samples).
        ratioVsBestOfEachRound: +ratioEachRound.toFixed(3),
        // Less sensitive to one lucky bare measurement: the median API rate over the best setup's median.
        ratioOfMedians: +(medianOf(rounds.map((r) => r.embeddingsPerSec)) / medianOf(rounds.map((r) => r.bareBySetup[medianFastest]!))).toFixed(3),
        // Pooled: all the API's top-level seconds over all of the best setup's seconds, sampled over the same minutes.
        ratioPooled: +pooled.toFixed(3),
        // The strictest reading: the median round's API rate over the best bare figure of the whole run.
        ratioVsBestBareOfRun: +(median.embeddingsPerSec / Math.max(bare, ...rounds.map((r) => r.bareImgPerSec))).toFixed(3),
        // The median paired ratio and the pooled ratio per CPU second the hypervisor left this VM, with the
        // mean shares of the machine's CPU stolen during the bare and the API windows and left idle by the API.
        perUnstolenCpu: {
          ratio: +unstolenRatio.toFixed(3),
          ratioPooled: +unstolenPooled.toFixed(3),
          meanStealBare: +meanOf(rounds.flatMap((r) => Object.values(r.stealShare.bareBySetup))).toFixed(3),
          meanStealApi: +meanOf(rounds.map((r) => r.stealShare.api)).toFixed(3),
          meanIdleApi: +meanOf(rounds.map((r) => r.apiIdleShare)).toFixed(3),
        },
        overhead: +(1 - ratio).toFixed(3),
        bar: 'overhead < 0.30 at concurrency 32',
        // Both readings must clear the bar.
        pass: 1 - ratio < 0.3 && 1 - pooled < 0.3,
      }),
    );
  } finally {
    await s3.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
