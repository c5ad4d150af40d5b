import { Miniflare } from 'miniflare';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { R2Bucket, R2Object } from '../api/edge/cf-types.js';
import { R2Store } from '../api/edge/r2-store.js';
import { ensureModelPublished } from '../scripts/bundled-checkpoint.js';
import { buildEdge, readWranglerConfig, startLocalEdge, type LocalEdge } from '../scripts/edge-local.js';
import { ObjectStoreError, StoreUnavailableError } from '../shared/store/object-store.js';
import { until } from './helpers/poll.js';

/**
 * docs/RELIABILITY.md, "the store is unreachable", at the edge: an R2 binding call that fails because of
 * R2 is StoreUnavailableError, so the shared app answers 503 + Retry-After as on Node; R2 refusing the
 * request itself (an invalid key) is not. Failures come from a bucket that throws as the binding does,
 * from workerd's local R2 with its blob storage broken, and through the Worker bundle in workerd, where
 * R2 also fails inside the gallery index's Durable Object and the error crosses RPC to the Worker.
 */

/** The binding's way of failing: a plain Error, the operation first and R2's code last. */
const r2Error = (op: string, text: string, code?: number) => new Error(`${op}: ${text}${code === undefined ? '' : ` (${code})`}`);

/** An R2 bucket whose every call fails with `make(op)`; `get` can instead fail while reading the body. */
function failingBucket(make: (op: string) => Error, opts: { failBody?: boolean } = {}): R2Bucket {
  const meta: R2Object = { key: 'k', size: 1, etag: 'e', httpEtag: '"e"', uploaded: new Date(0) };
  return {
    get: async () => {
      if (opts.failBody) return { ...meta, arrayBuffer: () => Promise.reject(make('get')) };
      throw make('get');
    },
    put: async () => {
      throw make('put');
    },
    head: async () => {
      throw make('head');
    },
    delete: async () => {
      throw make('delete');
    },
    list: async () => {
      throw make('list');
    },
  };
}

describe('R2 store: which binding failures are an outage', () => {
  const ops = (store: R2Store) => [store.get('a/b.json'), store.put('a/b.json', '{}'), store.head('a/b.json'), store.list('a/'), store.delete('a/b.json')];

  it.each([
    ['internal error', 'We encountered an internal error. Please try again.', 10001],
    ['service unavailable', 'Service is temporarily unavailable.', 10043],
    ['rate limited', 'Reduce your concurrent request rate for the same object.', 10058],
    ['unspecified (a 5xx without details)', 'Unspecified error', 0],
    ['no R2 code (the runtime lost R2)', 'Network connection lost.', undefined],
  ])('%s: every operation throws StoreUnavailableError naming the operation, key and bucket', async (_, text, code) => {
    const store = new R2Store(failingBucket((op) => r2Error(op, text, code)), 'R2 bucket (binding BUCKET)');
    const errors = await Promise.all(ops(store).map((p) => p.then(() => null, (e: unknown) => e)));
    for (const err of errors) {
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toMatch(/^(get|put|head|list|delete) 'a\/(b\.json)?' on R2 bucket \(binding BUCKET\) failed \(/);
    }
  });

  it('a body that fails while being read is an outage too', async () => {
    const store = new R2Store(failingBucket((op) => r2Error(op, 'Network connection lost.'), { failBody: true }));
    await expect(store.get('a/b.json')).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('R2 refusing the request itself (invalid key, too large) is an ObjectStoreError, not an outage', async () => {
    for (const [text, code] of [
      ['The specified object name is not valid.', 10020],
      ['Your proposed upload exceeds the maximum allowed object size.', 100100],
    ] as const) {
      const p = new R2Store(failingBucket((op) => r2Error(op, text, code))).put('a/b.json', '{}');
      await expect(p).rejects.toBeInstanceOf(ObjectStoreError);
      await expect(p).rejects.not.toBeInstanceOf(StoreUnavailableError);
    }
  });
});

describe("workerd's local R2 (Miniflare)", () => {
  let dir: string;
  let mf: Miniflare;
  let store: R2Store;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'edge-r2-errors-'));
    mf = new Miniflare({ modules: true, script: 'export default { fetch: () => new Response(null) }', r2Buckets: ['BUCKET'], r2Persist: dir });
    store = new R2Store((await mf.getR2Bucket('BUCKET')) as unknown as R2Bucket, 'local R2');
  });
  afterAll(async () => {
    await mf?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a key R2 refuses is R2's own error code, kept as an ObjectStoreError", async () => {
    const p = store.put('k'.repeat(1100), 'v');
    await expect(p).rejects.toThrow(/\(10020\)\)$/);
    await expect(p).rejects.not.toBeInstanceOf(StoreUnavailableError);
  });

  it('R2 failing to store the bytes (its blob storage broken) is StoreUnavailableError; repaired, the put succeeds', async () => {
    await store.put('first', 'v'); // creates the bucket's blob folder
    const blobs = path.join(dir, 'BUCKET', 'blobs');
    await breakBlobs(blobs);
    await expect(store.put('second', 'v')).rejects.toBeInstanceOf(StoreUnavailableError);
    await repairBlobs(blobs);
    await expect(store.put('second', 'v')).resolves.toHaveProperty('etag');
  });
});

/** A file where R2's blob folder was: workerd's local R2 can no longer write an object's bytes. */
async function breakBlobs(blobs: string): Promise<void> {
  await mkdir(blobs, { recursive: true });
  await rename(blobs, `${blobs}.aside`);
  await writeFile(blobs, 'not a folder');
}

async function repairBlobs(blobs: string): Promise<void> {
  await rm(blobs);
  await rename(`${blobs}.aside`, blobs);
}

describe('the Worker in workerd', () => {
  let buildDir: string;
  let persistDir: string;
  let edge: LocalEdge;
  let image: Uint8Array<ArrayBuffer>;
  beforeAll(async () => {
    buildDir = await mkdtemp(path.join(tmpdir(), 'edge-errors-build-'));
    persistDir = await mkdtemp(path.join(tmpdir(), 'edge-errors-data-'));
    await buildEdge(buildDir);
    // A short poll so a model load that failed is tried again soon after R2 is repaired.
    edge = await startLocalEdge({ buildDir, persistDir, vars: { LOG_LEVEL: 'error', POLL_INTERVAL_MS: '300' } });
    image = new Uint8Array(await sharp({ create: { width: 28, height: 28, channels: 3, background: 'gray' } }).png().toBuffer());
  }, 180_000);
  afterAll(async () => {
    await edge?.close();
    for (const d of [buildDir, persistDir]) if (d) await rm(d, { recursive: true, force: true });
  });

  const add = (id: string) => fetch(`${edge.url}/v1/images?id=${id}`, { method: 'POST', body: image, headers: { 'Content-Type': 'image/png' } });
  const blobsDir = async () => path.join(persistDir, 'r2', (await readWranglerConfig()).r2_buckets[0]!.bucket_name, 'blobs');

  it('a gallery write while R2 fails answers 503 store-unavailable with Retry-After; once R2 works it is stored', async () => {
    // No model is published: an upload is kept in the gallery, to be indexed when one arrives.
    expect((await add('before')).status).toBe(201);

    const blobs = await blobsDir();
    await breakBlobs(blobs);
    const res = await add('during');
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(((await res.json()) as { type: string }).type).toBe('urn:vicreg:problem:store-unavailable');

    await repairBlobs(blobs);
    expect((await add('during')).status).toBe(201);
    expect((await fetch(`${edge.url}/v1/images/during`)).status).toBe(200);
  }, 120_000);

  it("R2 failing inside the gallery index's Durable Object while it reads the gallery for a new model: the model is not written off, and loads once R2 works", async () => {
    // Runs after the test above (its items stay) and publishes the first model, so it comes last.
    expect((await add('waiting')).status).toBe(201);
    // No model yet, so every object so far is a gallery image or record.
    const blobs = await blobsDir();
    const galleryBlobs = (await readdir(blobs)).map((f) => path.join(blobs, f));
    const { version } = await ensureModelPublished(edge.store, BUNDLED);
    // The Worker can read the model's files; the Durable Object cannot read the gallery records.
    await breakEach(galleryBlobs);

    // Each look at models/latest.json that finds the version tries to load it (the request waits for it).
    const during = await fetchUntil(`${edge.url}/readyz`, (_, body) => !/no model has been published/.test(body));
    expect(during.status, during.body).toBe(503);
    expect((JSON.parse(during.body) as { detail: string }).detail).toMatch(new RegExp(`model ${version} could not be fetched \\(the store is unreachable; retrying\\)`));
    const res = await fetch(`${edge.url}/v1/embeddings`, { method: 'POST', body: image, headers: { 'Content-Type': 'image/png' } });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.headers.get('retry-after')).toBe('5');
    expect((await res.json()) as { type: string; detail: string }).toMatchObject({ type: 'urn:vicreg:problem:unavailable', detail: expect.stringMatching(/the store is unreachable; retrying/) });
    const models = (await (await fetch(`${edge.url}/v1/models`)).json()) as { models: { version: string; state: string }[] };
    expect(models.models.find((m) => m.version === version)?.state).not.toBe('failed');

    await repairEach(galleryBlobs);
    const after = await fetchUntil(`${edge.url}/readyz`, (status) => status === 200);
    expect((JSON.parse(after.body) as { model: { version: string } }).model.version).toBe(version);
    for (const id of ['before', 'during', 'waiting']) {
      expect(((await (await fetch(`${edge.url}/v1/images/${id}`)).json()) as { indexed: boolean }).indexed, id).toBe(true);
    }
  }, 180_000);
});

/** The bundled checkpoint, as `npm run dev:edge` publishes it. */
const BUNDLED = path.resolve(import.meta.dirname, '../checkpoints/bundled');

/** Each file replaced by a folder: R2 still lists the objects, but reading one fails in the runtime. */
async function breakEach(files: string[]): Promise<void> {
  for (const f of files) {
    await rename(f, `${f}.aside`);
    await mkdir(f);
  }
}

async function repairEach(files: string[]): Promise<void> {
  for (const f of files) {
    await rm(f, { recursive: true });
    await rename(`${f}.aside`, f);
  }
}

/** GET `url` until `done` holds (a bound on how long the Worker may take to look again, not a timing assertion). */
const fetchUntil = (url: string, done: (status: number, body: string) => boolean) =>
  until(url, async () => {
    const r = await fetch(url);
    const got = { status: r.status, body: await r.text() };
    if (!done(got.status, got.body)) throw new Error(`HTTP ${got.status} ${got.body}`);
    return got;
  }, { timeoutMs: 90_000, intervalMs: 200 });
