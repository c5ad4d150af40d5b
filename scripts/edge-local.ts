/**
 * The edge Worker in local workerd: builds it with wrangler exactly as `wrangler deploy` would
 * (infra/wrangler.jsonc) and runs the bundle with Miniflare, with a local R2 bucket and Durable Object
 * storage. `npm run dev:edge` and the edge tests both start it through here. The bucket is also handed
 * to Node (Miniflare's binding proxy), so the bundled checkpoint can be published into it and the
 * training worker can run against it.
 */
import { spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare, type WorkerOptions } from 'miniflare';
import type { R2Bucket } from '../api/edge/cf-types.js';
import { R2Store } from '../api/edge/r2-store.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const WRANGLER_CONFIG = path.join(root, 'infra/wrangler.jsonc');

/** `wrangler deploy --dry-run --outdir`: the upload as Cloudflare would receive it. Returns the "Total Upload" line. */
export async function buildEdge(outDir: string, config = WRANGLER_CONFIG): Promise<string> {
  const wrangler = path.join(root, 'node_modules/.bin/wrangler');
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(wrangler, ['deploy', '--dry-run', '--outdir', outDir, '-c', config], {
      cwd: root,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    p.stdout.on('data', (d: Buffer) => (text += d.toString()));
    p.stderr.on('data', (d: Buffer) => (text += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrangler build failed (exit ${code}):\n${text}`))));
  });
  return /Total Upload:[^\n]*/.exec(out)?.[0] ?? '';
}

/** The parts of wrangler.jsonc that Miniflare needs (comments stripped; JSONC has no other extension we use). */
interface WranglerConfig {
  compatibility_date: string;
  compatibility_flags?: string[];
  vars?: Record<string, string>;
  r2_buckets: { binding: string; bucket_name: string }[];
  durable_objects: { bindings: { name: string; class_name: string }[] };
}

export async function readWranglerConfig(file = WRANGLER_CONFIG): Promise<WranglerConfig> {
  return JSON.parse(stripJsonComments(await readFile(file, 'utf8'))) as WranglerConfig;
}

function stripJsonComments(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      out += text.slice(start, i + 1);
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else out += c;
  }
  return out;
}

export interface LocalEdgeOptions {
  /** A bundle from buildEdge. */
  buildDir: string;
  port?: number;
  host?: string;
  /** Keep R2 and Durable Object data under this folder (dev); default: in memory. */
  persistDir?: string;
  /** Vars and secrets over wrangler.jsonc's (ADMIN_TOKEN, POLL_INTERVAL_MS, …). */
  vars?: Record<string, string>;
  /** Also run a second copy of the Worker (its own isolate) on the same bucket and index. */
  secondInstance?: boolean;
  /** Vars of the second copy over `vars` (e.g. no ADMIN_TOKEN). */
  secondVars?: Record<string, string>;
}

export interface LocalEdge {
  url: string;
  /** The second instance's URL, when asked for. */
  secondUrl?: string;
  /** The local R2 bucket, from Node. */
  store: R2Store;
  close(): Promise<void>;
}

export async function startLocalEdge(opts: LocalEdgeOptions): Promise<LocalEdge> {
  const cfg = await readWranglerConfig();
  const files = await readdir(opts.buildDir);
  const script = files.find((f) => f.endsWith('.js'));
  if (!script) throw new Error(`no Worker script in ${opts.buildDir}; build it first`);
  const bucket = cfg.r2_buckets[0]!;
  const dobj = cfg.durable_objects.bindings[0]!;
  const base = (name: string): WorkerOptions => ({
    name,
    modules: true,
    scriptPath: path.join(opts.buildDir, script),
    modulesRoot: opts.buildDir,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    compatibilityDate: cfg.compatibility_date,
    compatibilityFlags: cfg.compatibility_flags ?? [],
    bindings: { ...cfg.vars, ...opts.vars },
    r2Buckets: { [bucket.binding]: bucket.bucket_name },
  });
  const first = 'api';
  const workers: WorkerOptions[] = [{ ...base(first), durableObjects: { [dobj.name]: { className: dobj.class_name, useSQLite: true } } }];
  if (opts.secondInstance) {
    workers.push({
      ...base('api-2'),
      bindings: { ...cfg.vars, ...opts.vars, ...opts.secondVars },
      durableObjects: { [dobj.name]: { className: dobj.class_name, scriptName: first, useSQLite: true } },
      unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    });
  }
  const mf = new Miniflare({
    workers,
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 0,
    ...(opts.persistDir
      ? { r2Persist: path.join(opts.persistDir, 'r2'), durableObjectsPersist: path.join(opts.persistDir, 'do') }
      : {}),
  });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  const secondUrl = opts.secondInstance ? (await mf.unsafeGetDirectURL('api-2')).toString().replace(/\/$/, '') : undefined;
  const r2 = (await mf.getR2Bucket(bucket.binding)) as unknown as R2Bucket;
  return {
    url,
    ...(secondUrl ? { secondUrl } : {}),
    store: new R2Store(r2, `local R2 bucket ${bucket.bucket_name}${opts.persistDir ? ` under ${opts.persistDir}` : ''}`),
    close: () => mf.dispose(),
  };
}
