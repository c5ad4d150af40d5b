/**
 * npm run bench:serve — the API beside the peer server (../shared/ref/peer_server.py: FastAPI + PyTorch
 * with its asyncio micro-batcher), in one run, under the same load.
 *
 * Both servers run as child processes on loopback: the API (`startApiServer` on BENCH_CHECKPOINT, the
 * bundled checkpoint by default, in an in-memory store, access log on, written to a file; its own settings from the environment) and
 * the peer (`/usr/bin/python3 ../shared/ref/peer_server.py --batch 64 --threads <cores>`, when that python
 * has torch, fastapi, uvicorn and PIL; else the API alone). The load is the neutral generator
 * ../shared/ref/loadgen.mjs (its own process: POSTs one raw image body at fixed concurrency over keep-alive,
 * 3 s unrecorded, then BENCH_SECONDS recorded; the server's CPU from /proc/<pid>/stat of its process tree).
 * Two images: a 28×28 Fashion-MNIST PNG (test image 0) and a 640×480 q80 JPEG of about 80 KB (a mosaic of
 * test images: a photo's size and detail).
 * First an unrecorded warm-up of each server (JIT, caches); then BENCH_ROUNDS rounds, each running every
 * (server, image) pair once, the servers' order alternating between rounds. Reported: the median over the
 * rounds of requests/s, p50, p99 and server CPU ms per request, per server and image; the median of the
 * rounds' API/peer throughput ratios; and the bar (API ≥ 2.5× the peer on the PNG, ≥ 1.5× on the JPEG,
 * CPU per request at or below the peer's on both). Progress goes to stderr, one JSON line to stdout.
 *
 * The peer always runs its own untrained 16-32-64-128 ResNet-mini; the JSON says whether the API's
 * checkpoint is that network (`same_network`), since a wider one costs more per image.
 *
 * Options (env): BENCH_CHECKPOINT (checkpoints/bundled), BENCH_ROUNDS (5), BENCH_SECONDS (8), BENCH_CONCURRENCY (32), BENCH_WARMUP_SECONDS (10,
 * per server and image), BENCH_IMAGES (png,jpeg), BENCH_PEER (auto | off), BENCH_PEER_BATCH (64; 0: the
 * peer without its batcher), BENCH_PEER_THREADS (cores), PEER_PYTHON (/usr/bin/python3), PEER_DIR
 * (../shared/ref). Any API setting (SERVING_THREADS, BATCH_MAX, BATCH_WAIT_MS, …) passes through.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelConfig } from '../shared/model/config.js';
import { median } from './stats.js';
import { freePort } from './free-port.js';
import { benchImages } from './images.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const ROUNDS = Math.max(1, Number(env.BENCH_ROUNDS ?? 5));
const SECONDS = Math.max(1, Number(env.BENCH_SECONDS ?? 8));
const CONCURRENCY = Math.max(1, Number(env.BENCH_CONCURRENCY ?? 32));
const WARMUP = Math.max(0, Number(env.BENCH_WARMUP_SECONDS ?? 10));
const IMAGES = (env.BENCH_IMAGES ?? 'png,jpeg').split(',').map((s) => s.trim()).filter((s): s is Kind => s === 'png' || s === 'jpeg');
const PEER_DIR = resolve(root, env.PEER_DIR ?? '../shared/ref');
const PEER_PYTHON = env.PEER_PYTHON ?? '/usr/bin/python3';
const PEER_BATCH = Number(env.BENCH_PEER_BATCH ?? 64);
const PEER_THREADS = Number(env.BENCH_PEER_THREADS ?? availableParallelism());
const BAR = { png: 2.5, jpeg: 1.5 } as const;
const CHECKPOINT = resolve(root, env.BENCH_CHECKPOINT ?? 'checkpoints/bundled');
/** peer_server.py's network (ResNetMini([16, 32, 64, 128])). */
const PEER_WIDTHS = [16, 32, 64, 128];

type Kind = 'png' | 'jpeg';
type Side = 'api' | 'peer';
interface Sample {
  rps: number;
  p50_ms: number;
  p99_ms: number;
  server_cpu_ms_per_req: number;
  errors: number;
  requests: number;
}

const log = (msg: string) => process.stderr.write(`[bench:serve] ${msg}\n`);
const r3 = (x: number) => Math.round(x * 1000) / 1000;

// ---------------------------------------------------------------- the API child
/** `node --import tsx bench/serve.ts --api-child`: the API on BENCH_CHECKPOINT; sends its URL over IPC. */
async function apiChild(): Promise<void> {
  const { createMemoryStore } = await import('../shared/store/memory-store.js');
  const { ensureModelPublished } = await import('../scripts/bundled-checkpoint.js');
  const { startApiServer } = await import('../api/server.js');
  const store = createMemoryStore();
  await ensureModelPublished(store, CHECKPOINT);
  const server = await startApiServer({ store, port: 0, host: '127.0.0.1', waitForModel: true, settings: { POLL_INTERVAL_MS: 3_600_000 } });
  const ready = server.host.status();
  if (!ready.ready) throw new Error(`the API did not load ${CHECKPOINT}: ${ready.reason}`);
  process.send!({ url: server.url, runtime: server.host.current?.model.runtime ?? null });
  process.on('disconnect', () => void server.close().finally(() => process.exit(0)));
}

function waitMessage<T>(child: ChildProcess, what: string, ms: number): Promise<T> {
  return new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`${what} did not start within ${ms / 1000} s`)), ms);
    child.once('message', (m) => {
      clearTimeout(t);
      ok(m as T);
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      fail(new Error(`${what} exited (${code}) before it was ready`));
    });
  });
}

async function waitHttp(url: string, child: ChildProcess, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}) before it was ready`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not answer ${url} within ${ms / 1000} s`);
}

function peerAvailable(): { ok: boolean; why?: string } {
  if (env.BENCH_PEER === 'off') return { ok: false, why: 'BENCH_PEER=off' };
  if (!existsSync(join(PEER_DIR, 'peer_server.py'))) return { ok: false, why: `no ${join(PEER_DIR, 'peer_server.py')}` };
  const r = spawnSync(PEER_PYTHON, ['-c', 'import torch, fastapi, uvicorn, PIL'], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, why: `${PEER_PYTHON} lacks torch/fastapi/uvicorn/PIL (apt-get install python3-torch python3-fastapi python3-uvicorn python3-pil): ${(r.stderr || String(r.error)).trim().split('\n').pop()}` };
  return { ok: true };
}

/** One run of the neutral load generator against a server. */
function loadgen(url: string, file: string, kind: Kind, seconds: number, pid: number): Promise<Sample> {
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [join(PEER_DIR, 'loadgen.mjs'), url, file, String(CONCURRENCY), String(seconds), String(pid)], {
      env: { ...env, CT: kind === 'png' ? 'image/png' : 'image/jpeg' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.on('error', fail);
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit ${code}`);
        ok(JSON.parse(line) as Sample);
      } catch (err) {
        fail(new Error(`loadgen failed (${(err as Error).message}): ${out}`));
      }
    });
  });
}

async function main(): Promise<void> {
  const started = new Date();
  const load0 = loadavg();
  const dir = await mkdtemp(join(tmpdir(), 'bench-serve-'));
  const children: ChildProcess[] = [];
  try {
    const manifest = JSON.parse(readFileSync(join(CHECKPOINT, 'manifest.json'), 'utf8')) as { training: { config: Record<string, unknown> } };
    const widths = ModelConfig.safeParse(manifest.training.config['model']).data?.backbone.widths ?? [];
    const sameNetwork = widths.join() === PEER_WIDTHS.join();
    if (!sameNetwork) {
      log(`the API serves widths ${widths.join('-')}, the peer ${PEER_WIDTHS.join('-')}: not the same network (BENCH_CHECKPOINT=<a checkpoint of the default network> compares like with like)`);
    }

    // The two images.
    const { png, jpeg } = await benchImages();
    const files: Record<Kind, string> = { png: join(dir, 'image.png'), jpeg: join(dir, 'image.jpg') };
    await writeFile(files.png, png);
    await writeFile(files.jpeg, jpeg);

    // The API.
    const accessLog = join(dir, 'api.log');
    const api = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--api-child'], {
      cwd: root,
      env,
      stdio: ['ignore', openSync(accessLog, 'a'), 'inherit', 'ipc'],
    });
    children.push(api);
    const { url: apiUrl, runtime } = await waitMessage<{ url: string; runtime: string | null }>(api, 'the API', 120_000);
    log(`API ${apiUrl} (pid ${api.pid}; ${runtime})`);
    const targets: { side: Side; url: string; pid: number }[] = [{ side: 'api', url: `${apiUrl}/v1/embeddings`, pid: api.pid! }];

    // The peer.
    const peerCheck = peerAvailable();
    let peerSetup: Record<string, unknown> | string = `not run: ${peerCheck.why}`;
    if (peerCheck.ok) {
      const port = await freePort();
      const args = [join(PEER_DIR, 'peer_server.py'), '--port', String(port), '--threads', String(PEER_THREADS), ...(PEER_BATCH > 0 ? ['--batch', String(PEER_BATCH)] : [])];
      const peer = spawn(PEER_PYTHON, args, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
      children.push(peer);
      await waitHttp(`http://127.0.0.1:${port}/healthz`, peer, 'the peer', 120_000);
      log(`peer http://127.0.0.1:${port} (pid ${peer.pid}; ${PEER_PYTHON} ../shared/ref/peer_server.py ${args.slice(1).join(" ")})`);
      targets.push({ side: 'peer', url: `http://127.0.0.1:${port}/v1/embeddings`, pid: peer.pid! });
      peerSetup = { command: `${PEER_PYTHON} ../shared/ref/peer_server.py ${args.slice(1).join(' ')}`, batch: PEER_BATCH, threads: PEER_THREADS };
    } else {
      log(`peer ${peerSetup}`);
    }

    if (WARMUP > 0) {
      for (const t of targets) for (const kind of IMAGES) await loadgen(t.url, files[kind], kind, WARMUP, t.pid);
      log(`warm-up done (${WARMUP} s per server and image)`);
    }

    const samples: Record<Side, Record<Kind, Sample[]>> = { api: { png: [], jpeg: [] }, peer: { png: [], jpeg: [] } };
    for (let round = 0; round < ROUNDS; round++) {
      for (const kind of IMAGES) {
        const order = round % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) {
          const s = await loadgen(t.url, files[kind], kind, SECONDS, t.pid);
          samples[t.side][kind].push(s);
          log(`round ${round + 1}/${ROUNDS} ${t.side} ${kind}: ${s.rps} req/s, p50 ${s.p50_ms} ms, p99 ${s.p99_ms} ms, cpu ${s.server_cpu_ms_per_req} ms/req${s.errors ? `, ${s.errors} errors` : ''}`);
        }
      }
    }

    const summary = (xs: Sample[]) =>
      xs.length === 0
        ? null
        : {
            rps: r3(median(xs.map((s) => s.rps))),
            p50_ms: r3(median(xs.map((s) => s.p50_ms))),
            p99_ms: r3(median(xs.map((s) => s.p99_ms))),
            cpu_ms_per_req: r3(median(xs.map((s) => s.server_cpu_ms_per_req))),
            errors: xs.reduce((a, s) => a + s.errors, 0),
            rps_rounds: xs.map((s) => s.rps),
          };
    const result: Record<string, unknown> = {};
    const bar: Record<string, unknown> = {};
    let met: boolean | null = targets.length > 1 ? true : null;
    for (const kind of IMAGES) {
      const a = samples.api[kind];
      const p = samples.peer[kind];
      const entry: Record<string, unknown> = { api: summary(a), peer: summary(p) };
      if (p.length > 0) {
        const ratio = r3(median(a.map((s, i) => s.rps / p[i]!.rps)));
        const cpuA = median(a.map((s) => s.server_cpu_ms_per_req));
        const cpuP = median(p.map((s) => s.server_cpu_ms_per_req));
        entry.rps_ratio = ratio;
        entry.cpu_ratio = r3(cpuA / cpuP);
        const ok = ratio >= BAR[kind] && cpuA <= cpuP;
        bar[kind] = { need: `rps ≥ ${BAR[kind]}× the peer's, cpu/req ≤ the peer's`, met: ok };
        met = met && ok;
      }
      result[kind] = entry;
    }
    console.log(
      JSON.stringify({
        bench: 'serve',
        date: started.toISOString(),
        machine: { cpus: availableParallelism(), node: process.version, loadavg: { start: load0.map(r3), end: loadavg().map(r3) } },
        setup: {
          concurrency: CONCURRENCY,
          seconds: SECONDS,
          rounds: ROUNDS,
          warmupSeconds: WARMUP,
          api: { checkpoint: CHECKPOINT, widths, runtime, settings: Object.fromEntries(Object.entries(env).filter(([k]) => /^(SERVING_|BATCH_|MAX_|VICREG_)/.test(k))) },
          peer: peerSetup,
          same_network: sameNetwork,
          images: { png: `${png.length} B, 28×28`, jpeg: `${jpeg.length} B, 640×480 q80` },
        },
        ...result,
        bar: { ...bar, met },
      }),
    );
    const errors = readFileSync(accessLog, 'utf8').split('\n').filter((l) => /"level":"error"/.test(l));
    if (errors.length > 0) log(`the API logged ${errors.length} errors; first: ${errors[0]}`);
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--api-child')) {
  apiChild().catch((err: Error) => {
    console.error(`[bench:serve] API child failed: ${err.stack ?? err.message}`);
    process.exit(1);
  });
} else {
  main().catch((err: Error) => {
    console.error(`[bench:serve] ${err.stack ?? err.message}`);
    process.exit(1);
  });
}
