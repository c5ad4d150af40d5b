import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointSource } from '../api/checkpoint-source.js';
import type { ModelSource } from '../api/model-source.js';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import { activateVersion } from '../shared/checkpoint/publish.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { createMemoryLogger } from '../shared/log.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { startLocalS3, type LocalS3 } from '../shared/node/local-s3.js';
import { parseS3Config } from '../shared/store/config.js';
import { ObjectStoreError, StoreUnavailableError } from '../shared/store/object-store.js';
import { createS3Store } from '../shared/store/s3-store.js';
import { png, publishFixture } from './helpers/api-fixtures.js';
import { until } from './helpers/poll.js';

/**
 * docs/RELIABILITY.md, "store unreachable": the API keeps serving from memory while its S3 server is down,
 * refuses gallery writes with 503 + Retry-After, and after the server comes back (same port, same data)
 * takes writes again with nothing written before lost. Real s3rver, real HTTP server; every wait is for an
 * observable state (a log line, a listening server), never for a time.
 */

let dir = '';
let s3: LocalS3 | null = null;
let api: ApiServer | null = null;
let images: ImageDataset;
let pngs: Uint8Array<ArrayBuffer>[];
const logger = createMemoryLogger();
const GALLERY = 12;

beforeAll(async () => {
  await tf.setBackend('wasm');
  images = await loadFashionMnist('test', { limit: GALLERY + 4 });
  pngs = await Promise.all(Array.from({ length: GALLERY + 4 }, (_, i) => png(images, i)));
  dir = await mkdtemp(join(tmpdir(), 'vicreg-outage-'));
  s3 = await startLocalS3({ dir });
  await publishFixture(s3.store, { seed: 11, activate: true });
  // The model host polls models/latest.json every 50 ms, so polls do fail while the store is down.
  api = await startTestApi({ store: s3.store, logger, waitForModel: true, settings: { POLL_INTERVAL_MS: 50, BATCH_WAIT_MS: 2 } });
}, 120_000);

afterAll(async () => {
  await api?.close();
  await s3?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const post = (path: string, body: Uint8Array<ArrayBuffer>, ct = 'image/png') => fetch(`${api!.url}${path}`, { method: 'POST', body, headers: { 'Content-Type': ct } });
const addImage = (id: string, i: number) => post(`/v1/images?id=${id}&label=c${images.labels![i]}`, pngs[i]!);
const logged = (msg: string, from: number) => logger.records.slice(from).some((r) => r['msg'] === msg);

// Bounded only so a broken build fails instead of hanging; the states waited for arrive in milliseconds.
const POLL = { timeoutMs: 20_000, intervalMs: 10 };

describe('store unreachable', () => {
  it('reads serve from memory, gallery operations answer 503 + Retry-After, and after the store returns writes succeed with nothing lost', async () => {
    // Before: a labelled gallery, indexed.
    for (let i = 0; i < GALLERY; i++) expect((await addImage(`g-${i}`, i)).status).toBe(201);
    const before = (await (await post('/v1/search?k=5', pngs[0]!)).json()) as { results: { id: string }[] };
    expect(before.results[0]!.id).toBe('g-0');

    // The store goes away.
    const port = Number(new URL(s3!.endpoint).port);
    await s3!.close();
    const mark = logger.records.length;
    await until('a failed poll of models/latest.json', () => logged('could not read latest model pointer', mark), POLL);

    // Reads keep answering from the model and index in memory.
    const emb = await post('/v1/embeddings', pngs[1]!);
    expect(emb.status).toBe(200);
    const search = await post('/v1/search?k=5', pngs[0]!);
    expect(search.status).toBe(200);
    expect(((await search.json()) as { results: { id: string }[] }).results).toEqual(before.results);
    const byId = await fetch(`${api!.url}/v1/search`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id: 'g-3', k: 3 }) });
    expect(byId.status).toBe(200);
    const classify = await post('/v1/classify?method=knn&k=5', pngs[2]!);
    expect(classify.status).toBe(200);
    expect(((await classify.json()) as { predictions: unknown[] }).predictions.length).toBeGreaterThan(0);
    expect((await fetch(`${api!.url}/readyz`)).status).toBe(200);

    // Gallery writes (and reads of the bucket) are refused with a problem that says to retry.
    const refused = [
      await addImage('during', GALLERY),
      await fetch(`${api!.url}/v1/images/g-1`, { method: 'DELETE' }),
      await fetch(`${api!.url}/v1/images/g-2`),
    ];
    for (const res of refused) {
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      const p = (await res.json()) as { type: string; detail: string };
      expect(p.type).toBe('urn:vicreg:problem:store-unavailable');
      expect(p.detail).toMatch(/store is unreachable/);
      expect(p.detail).toMatch(/retry/);
    }
    const metrics = await (await fetch(`${api!.url}/metrics`)).text();
    expect(metrics.split('\n').filter((l) => l.startsWith('http_requests_total{') && l.includes('status="500"'))).toEqual([]);
    expect(logger.records.slice(mark).filter((r) => r['level'] === 'error')).toEqual([]);

    // The store comes back on the same port with the same data; the same API takes writes again.
    s3 = await startLocalS3({ dir, port });
    expect((await addImage('during', GALLERY)).status).toBe(201);
    expect((await addImage('after', GALLERY + 1)).status).toBe(201);
    expect((await fetch(`${api!.url}/v1/images/g-1`, { method: 'DELETE' })).status).toBe(204);

    // Nothing lost: every acknowledged write is in the bucket, with its bytes, and indexed.
    const want = [...Array.from({ length: GALLERY }, (_, i) => `g-${i}`).filter((id) => id !== 'g-1'), 'during', 'after'].sort();
    const list = (await (await fetch(`${api!.url}/v1/images?limit=100`)).json()) as { items: { id: string; indexed: boolean }[] };
    expect(list.items.map((x) => x.id)).toEqual(want);
    expect(list.items.every((x) => x.indexed)).toBe(true);
    const content = new Uint8Array(await (await fetch(`${api!.url}/v1/images/g-0/content`)).arrayBuffer());
    expect(Buffer.from(content).equals(Buffer.from(pngs[0]!))).toBe(true);
    const found = (await (await post('/v1/search?k=1', pngs[GALLERY + 1]!)).json()) as { results: { id: string }[] };
    expect(found.results[0]!.id).toBe('after');

    // A fresh API on the restored store builds the same gallery from the bucket.
    const fresh = await startTestApi({ store: s3.store, logger: createMemoryLogger(), waitForModel: true, settings: { POLL_INTERVAL_MS: 3_600_000 } });
    try {
      const ready = (await (await fetch(`${fresh.url}/readyz`)).json()) as { indexSize: number };
      expect(ready.indexSize).toBe(want.length);
    } finally {
      await fresh.close();
    }
  }, 120_000);
});

describe('store unreachable while a new model loads', () => {
  it('the version is not written off: it is loaded once the store is back, and the old one serves meanwhile', async () => {
    const sdir = await mkdtemp(join(tmpdir(), 'vicreg-outage-load-'));
    let store3 = await startLocalS3({ dir: sdir });
    const port = Number(new URL(store3.endpoint).port);
    let server: ApiServer | null = null;
    try {
      const v1 = await publishFixture(store3.store, { seed: 12, activate: true });
      // The real source, with a gate in front of v2's load: the test takes the store away while it waits.
      const base = checkpointSource(store3.store);
      let held = '';
      let reached!: () => void;
      const atGate = new Promise<void>((r) => (reached = r));
      let open!: () => void;
      const opened = new Promise<void>((r) => (open = r));
      const models: ModelSource = {
        ...base,
        async load(version) {
          if (version === held) {
            held = '';
            reached();
            await opened;
          }
          return base.load(version);
        },
      };
      const log = createMemoryLogger();
      server = await startTestApi({ store: store3.store, models, logger: log, waitForModel: true, settings: { POLL_INTERVAL_MS: 50 } });
      const v2 = await publishFixture(store3.store, { seed: 13, activate: false, parent: v1 });
      held = v2;
      await activateVersion(store3.store, v2);
      await atGate;
      await store3.close();
      const mark = log.records.length;
      open(); // v2's files are fetched from a store that is gone
      await until('the failed fetch of v2', () => log.records.slice(mark).some((r) => r['version'] === v2 && r['level'] !== 'debug'), POLL);
      expect(server.host.current?.version).toBe(v1);
      expect((await post2(server, '/v1/embeddings')).status).toBe(200);

      store3 = await startLocalS3({ dir: sdir, port });
      await until('v2 serving', () => server!.host.current?.version === v2, POLL);
      const models2 = (await (await fetch(`${server.url}/v1/models`)).json()) as { models: { version: string; state: string }[] };
      expect(models2.models.find((m) => m.version === v2)?.state).not.toBe('failed');
    } finally {
      await server?.close();
      await store3.close();
      await rm(sdir, { recursive: true, force: true });
    }
  }, 120_000);
});

const post2 = (s: ApiServer, path: string) => fetch(`${s.url}${path}`, { method: 'POST', body: pngs[0]!, headers: { 'Content-Type': 'image/png' } });

describe('which store failures are an outage', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  /** A fake S3 endpoint that answers every request with one status and an S3 error body. */
  async function answering(status: number, code: string): Promise<string> {
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(status, { 'Content-Type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`);
      });
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  }
  const storeAt = (endpoint: string) => createS3Store(parseS3Config({ endpoint, accessKeyId: 'x', secretAccessKey: 'y', bucket: 'vicreg' }));

  it('refused connections and 5xx answers are StoreUnavailableError (503); a 403 is not', async () => {
    // A port nothing listens on: bind one, note it, close it.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));

    await expect(storeAt(`http://127.0.0.1:${deadPort}`).put('k', 'v')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(storeAt(await answering(500, 'InternalError')).put('k', 'v')).rejects.toBeInstanceOf(StoreUnavailableError);
    const denied = storeAt(await answering(403, 'AccessDenied')).put('k', 'v');
    await expect(denied).rejects.toBeInstanceOf(ObjectStoreError);
    await expect(denied).rejects.not.toBeInstanceOf(StoreUnavailableError);
  });
});
