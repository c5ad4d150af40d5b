/**
 * The edge API proven in workerd: the Worker bundled by wrangler exactly as `wrangler deploy` would
 * (infra/wrangler.jsonc), run by Miniflare with a local R2 bucket and Durable Object storage, two
 * instances (isolates) on the same bucket and gallery index, compared with the Node server on the same
 * checkpoint and images.
 */
import sharp from 'sharp';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import { workerConfigFromEnv } from '../gpu-worker/config.js';
import { startWorker } from '../gpu-worker/worker.js';
import { buildEdge, startLocalEdge, type LocalEdge } from '../scripts/edge-local.js';
import { ensureModelPublished } from '../scripts/bundled-checkpoint.js';
import { activateVersion, readLatest } from '../shared/checkpoint/publish.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { readJob } from '../shared/jobs/jobs.js';
import { createMemoryLogger } from '../shared/log.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createMemoryStore } from '../shared/store/memory-store.js';
import { b64, bombPng, png, pool, publishFixture } from './helpers/api-fixtures.js';
import { until } from './helpers/poll.js';

const TOKEN = 'edge-admin-token-0123456789';
const BUNDLED = path.resolve(import.meta.dirname, '../checkpoints/bundled');
/** The longest an isolate may take to follow models/latest.json in these tests (POLL_INTERVAL_MS is 300): a bound, not a timing assertion. */
const FOLLOW = { timeoutMs: 60_000 };

let buildDir: string;
let upload: string;
let edge: LocalEdge;
let node: ApiServer;
let train: ImageDataset;
let test: ImageDataset;
let bundled: string;

beforeAll(async () => {
  await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
  buildDir = await mkdtemp(path.join(tmpdir(), 'edge-build-'));
  [upload, train, test] = await Promise.all([buildEdge(buildDir), loadFashionMnist('train', { limit: 3000 }), loadFashionMnist('test', { limit: 300 })]);
  edge = await startLocalEdge({
    buildDir,
    secondInstance: true,
    vars: { ADMIN_TOKEN: TOKEN, POLL_INTERVAL_MS: '300', MAX_BODY_BYTES: '200000', MAX_PIXELS: '1000000', LOG_LEVEL: 'warn' },
    secondVars: { ADMIN_TOKEN: '' },
  });
  // The Node server on the same checkpoint, for parity.
  const nodeStore = createMemoryStore();
  bundled = (await ensureModelPublished(nodeStore, BUNDLED)).version;
  node = await startTestApi({
    store: nodeStore,
    waitForModel: true,
    logger: createMemoryLogger(),
    settings: { POLL_INTERVAL_MS: 60_000 },
  });
}, 240_000);

afterAll(async () => {
  await node?.close();
  await edge?.close();
  if (buildDir) await rm(buildDir, { recursive: true, force: true });
});

const A = (p: string) => `${edge.url}${p}`;
const B = (p: string) => `${edge.secondUrl}${p}`;
const post = (u: string, body: BodyInit, type?: string, headers: Record<string, string> = {}) =>
  retryReset(() => fetch(u, { method: 'POST', body, headers: { ...(type ? { 'Content-Type': type } : {}), ...headers } }));

/**
 * Under heavy load local workerd has closed a kept-alive connection as the next request went out
 * ("other side closed"; 2 of ~10 runs on a loaded 2-core machine): that request is sent once more on a
 * new connection. Any HTTP answer, error statuses included, is returned as it came.
 */
async function retryReset(send: () => Promise<Response>): Promise<Response> {
  try {
    return await send();
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw err;
    console.warn(`edge test: connection reset, sending again (${(err as Error).message})`);
    return send();
  }
}
const postJson = (u: string, body: unknown, headers: Record<string, string> = {}) => post(u, JSON.stringify(body), 'application/json', headers);
const json = async <T = Record<string, unknown>>(r: Response): Promise<T> => {
  const text = await r.text();
  expect(r.ok, text).toBe(true);
  return JSON.parse(text) as T;
};

async function expectProblem(res: Response, status: number, detail?: RegExp): Promise<Record<string, unknown>> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(body).toMatchObject({ status, type: expect.stringMatching(/^urn:vicreg:problem:/), detail: expect.any(String) });
  if (detail) expect(body.detail).toMatch(detail);
  return body;
}

const currentVersion = async (u: (p: string) => string) => {
  const r = await fetch(u('/v1/models/current'));
  return r.ok ? ((await r.json()) as { version: string }).version : `HTTP ${r.status}`;
};
/** A probe for until(): `u` serves `version` (else it throws what `u` serves, for the timeout message). */
const serves = (u: (p: string) => string, version: string) => async () => {
  const v = await currentVersion(u);
  if (v !== version) throw new Error(`serving ${v}`);
  return v;
};

async function embed(u: (p: string) => string, images: Uint8Array<ArrayBuffer>[], type: string): Promise<Float32Array[]> {
  const form = new FormData();
  images.forEach((b, i) => form.append('image', new Blob([b], { type }), `${i}`));
  const body = await json<{ data: { embedding: number[] }[] }>(await fetch(u('/v1/embeddings'), { method: 'POST', body: form }));
  return body.data.map((d) => Float32Array.from(d.embedding));
}

const cosine = (a: Float32Array, b: Float32Array) => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
};

/** A Fashion-MNIST image blown up to 640×480 and saved as JPEG or WebP (a photo-sized upload). */
async function photo(ds: ImageDataset, i: number, format: 'jpeg' | 'webp'): Promise<Uint8Array<ArrayBuffer>> {
  const img = sharp(Buffer.from(ds.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).resize(640, 480, { fit: 'fill' });
  return new Uint8Array(await (format === 'jpeg' ? img.jpeg({ quality: 80 }) : img.webp({ quality: 80 })).toBuffer());
}

/** The bundled checkpoint is latest in R2 and both instances serve it (whatever an earlier test left). */
async function modelServed(): Promise<void> {
  await ensureModelPublished(edge.store, BUNDLED);
  if ((await readLatest(edge.store))?.version !== bundled) await activateVersion(edge.store, bundled, { force: true });
  for (const u of [A, B]) await until('serving the bundled model', serves(u, bundled), FOLLOW);
}

/** The labelled gallery the search, classify and retrain tests read: 8 training images per class. */
const gallery: { id: string; i: number; label: string }[] = [];
let galleryAdded: Promise<void> | undefined;

/** Adds the gallery once (through both instances, as JSON and multipart) for whichever test needs it first. */
function galleryReady(): Promise<void> {
  galleryAdded ??= (async () => {
    await modelServed();
    const perClass = new Map<number, number>();
    for (let i = 0; i < train.n && gallery.length < 80; i++) {
      const y = train.labels![i]!;
      if ((perClass.get(y) ?? 0) >= 8) continue;
      perClass.set(y, (perClass.get(y) ?? 0) + 1);
      gallery.push({ id: `fm-${i}`, i, label: train.classNames![y]! });
    }
    const statuses = await pool(gallery, 6, async (g, j) => {
      const bytes = await png(train, g.i);
      const u = j % 2 ? A : B;
      if (j % 3 === 0) return (await postJson(u('/v1/images'), { base64: b64(bytes), id: g.id, label: g.label, metadata: { index: g.i } })).status;
      const form = new FormData();
      form.append('image', new Blob([bytes], { type: 'image/png' }), `${g.id}.png`);
      form.append('id', g.id);
      form.append('label', g.label);
      return (await fetch(u('/v1/images'), { method: 'POST', body: form })).status;
    });
    if (!statuses.every((st) => st === 201)) throw new Error(`gallery upload: ${JSON.stringify(statuses)}`);
  })();
  return galleryAdded;
}

describe('the edge Worker in workerd', () => {
  it('bundles under the free plan’s 3 MB compressed limit', () => {
    const gzipKiB = Number(/gzip: ([\d.]+) KiB/.exec(upload)?.[1]);
    expect(gzipKiB, upload).toBeGreaterThan(100);
    expect(gzipKiB).toBeLessThan(3 * 1024);
  });

  it('is not ready before a model is published, and says why; serves the bundled checkpoint once it is in R2', async () => {
    // An instance of its own on an empty bucket: the shared one may already have a model.
    const empty = await startLocalEdge({ buildDir, vars: { LOG_LEVEL: 'warn' } });
    try {
      const E = (p: string) => `${empty.url}${p}`;
      await expectProblem(await fetch(E('/readyz')), 503, /no model has been published/);
      expect((await fetch(E('/healthz'))).status).toBe(200);
      await expectProblem(await post(E('/v1/embeddings'), await png(test, 0), 'image/png'), 503);
      expect((await ensureModelPublished(empty.store, BUNDLED)).version).toBe(bundled);
      await until('serving', serves(E, bundled), FOLLOW);
      expect(await json(await fetch(E('/readyz')))).toMatchObject({ status: 'ready', model: { version: bundled } });
    } finally {
      await empty.close();
    }
  });

  it('serves the bundled checkpoint on both instances of one bucket', async () => {
    await modelServed();
    for (const u of [A, B]) expect(await json(await fetch(u('/readyz')))).toMatchObject({ status: 'ready', model: { version: bundled } });
  });

  it('embeds real PNGs at the model’s size exactly as the Node server does (≤ 1e-4)', async () => {
    await modelServed();
    const images = await Promise.all(Array.from({ length: 24 }, (_, i) => png(test, i)));
    const [edgeA, edgeB, onNode] = await Promise.all([embed(A, images, 'image/png'), embed(B, images, 'image/png'), embed((p) => `${node.url}${p}`, images, 'image/png')]);
    let worst = 0;
    for (let i = 0; i < images.length; i++) {
      for (let j = 0; j < onNode[i]!.length; j++) worst = Math.max(worst, Math.abs(edgeA[i]![j]! - onNode[i]![j]!), Math.abs(edgeB[i]![j]! - onNode[i]![j]!));
    }
    expect(worst).toBeLessThanOrEqual(1e-4);
    // A raw body and a base64 JSON body give the same vector.
    const raw = await json<{ data: { embedding: number[] }[] }>(await post(A('/v1/embeddings'), images[0]!, 'image/png'));
    const viaJson = await json<{ data: { embedding: number[] }[] }>(await postJson(B('/v1/embeddings'), { images: [{ base64: b64(images[0]!) }] }));
    expect(raw.data[0]!.embedding).toEqual(viaJson.data[0]!.embedding);
  });

  it('embeds resized JPEGs and WebPs at cosine ≥ 0.995 with the Node server', async () => {
    await modelServed();
    for (const format of ['jpeg', 'webp'] as const) {
      const images = await Promise.all(Array.from({ length: 8 }, (_, i) => photo(test, 30 + i, format)));
      const [onEdge, onNode] = await Promise.all([embed(A, images, `image/${format}`), embed((p) => `${node.url}${p}`, images, `image/${format}`)]);
      const worst = Math.min(...onEdge.map((e, i) => cosine(e, onNode[i]!)));
      expect(worst, format).toBeGreaterThanOrEqual(0.995);
    }
  });

  it('answers every input error with the contract’s problem (and formats the edge cannot decode with 415)', async () => {
    await modelServed();
    const gif = new Uint8Array(await sharp(await png(test, 1)).gif().toBuffer());
    await expectProblem(await post(A('/v1/embeddings'), gif, 'image/gif'), 415, /PNG, JPEG or WebP/);
    const tiff = new Uint8Array(await sharp(await png(test, 1)).tiff().toBuffer());
    await expectProblem(await post(A('/v1/embeddings'), tiff, 'application/octet-stream'), 415, /PNG, JPEG or WebP/);
    const jpeg = await photo(test, 2, 'jpeg');
    await expectProblem(await post(A('/v1/embeddings'), jpeg.subarray(0, jpeg.length >> 1), 'image/jpeg'), 422);
    await expectProblem(await post(A('/v1/embeddings'), 'I am plain text, not a PNG', 'image/png'), 422, /not a recognisable image/);
    await expectProblem(await post(A('/v1/embeddings'), 'x', 'text/plain'), 415, /text\/plain/);
    await expectProblem(await post(A('/v1/embeddings'), bombPng(100_000, 100_000), 'image/png'), 413, /pixel/);
    await expectProblem(await post(A('/v1/embeddings'), new Uint8Array(300_000), 'image/png'), 413, /limit/);
    await expectProblem(await post(A('/v1/embeddings'), '{"images": [', 'application/json'), 400, /not valid JSON/);
    const field = await expectProblem(await postJson(A('/v1/embeddings'), { images: [{ bas64: 'x' }] }), 400);
    expect(JSON.stringify(field.errors)).toMatch(/body\.images\.0/);
    await expectProblem(await post(A('/v1/embeddings'), new Uint8Array(0), 'image/png'), 400, /empty/);
    await expectProblem(await postJson(A('/v1/search'), { vector: [1, 2, 3], k: 5 }), 400, /body\.vector/);
    await expectProblem(await fetch(A('/v1/nothing-here')), 404);
    const r405 = await fetch(A('/v1/embeddings'));
    await expectProblem(r405, 405);
    expect(r405.headers.get('allow')).toBe('POST');
    await expectProblem(await fetch(A('/v1/images/no-such-image')), 404);
    await expectProblem(await postJson(A('/v1/search'), { id: 'no-such-image', k: 3 }), 404);
  });

  it('a cold isolate answers a burst of concurrent first requests (none waits on another’s work)', async () => {
    const cold = await startLocalEdge({ buildDir, vars: { LOG_LEVEL: 'warn' } });
    try {
      await ensureModelPublished(cold.store, BUNDLED);
      const images = await Promise.all(Array.from({ length: 8 }, (_, i) => png(test, i)));
      const answers = await Promise.all(images.map((b) => post(`${cold.url}/v1/embeddings`, b, 'image/png')));
      expect(answers.map((r) => r.status)).toEqual(images.map(() => 200));
      const vectors = await Promise.all(answers.map(async (r) => ((await r.json()) as { data: { embedding: number[] }[] }).data[0]!.embedding));
      const onNode = await embed((p) => `${node.url}${p}`, images, 'image/png');
      vectors.forEach((v, i) => v.forEach((x, j) => expect(Math.abs(x - onNode[i]![j]!)).toBeLessThanOrEqual(1e-4)));
      // Its gallery is empty: kNN has nothing to vote with, and says what to do.
      await expectProblem(await post(`${cold.url}/v1/classify?method=knn`, images[1]!, 'image/png'), 409, /no labelled images to vote; add images with a label/);
    } finally {
      await cold.close();
    }
  });
});

describe('gallery, search and classification across two isolates', () => {
  it('a write through one instance is in the next search from the other (read-your-writes)', async () => {
    await galleryReady();
    // Images of this test's own (training rows beyond the gallery's), each searched for at once on the other instance.
    const own = Array.from({ length: 6 }, (_, k) => ({ id: `rw-${2000 + k}`, i: 2000 + k, label: train.classNames![train.labels![2000 + k]!]! }));
    try {
      for (const g of own) {
        const bytes = await png(train, g.i);
        expect((await post(A(`/v1/images?id=${g.id}&label=${encodeURIComponent(g.label)}`), bytes, 'image/png')).status).toBe(201);
        const hits = await json<{ results: { id: string; score: number }[] }>(await post(B('/v1/search?k=1'), bytes, 'image/png'));
        expect(hits.results[0]).toMatchObject({ id: g.id });
        expect(hits.results[0]!.score).toBeGreaterThan(0.999);
      }
      const item = await json(await fetch(B(`/v1/images/${gallery[9]!.id}`)));
      expect(item).toMatchObject({ id: gallery[9]!.id, label: gallery[9]!.label, indexed: true });
      const content = await fetch(A(`/v1/images/${gallery[9]!.id}/content`));
      expect(Buffer.from(await content.arrayBuffer()).equals(Buffer.from(await png(train, gallery[9]!.i)))).toBe(true);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { items: { id: string }[]; nextCursor: string | null } = await json(await fetch(B(`/v1/images?limit=25${cursor ? `&cursor=${cursor}` : ''}`)));
        seen.push(...page.items.map((x) => x.id));
        cursor = page.nextCursor;
      } while (cursor);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen).toEqual(expect.arrayContaining([...gallery, ...own].map((g) => g.id)));
    } finally {
      for (const g of own) await fetch(A(`/v1/images/${g.id}`), { method: 'DELETE' });
    }
  });

  it('searches by id, by vector and with a label filter; neighbours share the class well above chance', async () => {
    await galleryReady();
    const byId = await json<{ results: { id: string; label: string }[] }>(await postJson(A('/v1/search'), { id: gallery[0]!.id, k: 5 }));
    expect(byId.results).toHaveLength(5);
    expect(byId.results.some((r) => r.id === gallery[0]!.id)).toBe(false);
    const vec = (await embed(B, [await png(test, 5)], 'image/png'))[0]!;
    const filtered = await json<{ results: { label: string }[] }>(await postJson(B('/v1/search'), { vector: Array.from(vec), k: 3, filter: { label: 'Trouser' } }));
    expect(filtered.results.length).toBe(3);
    expect(filtered.results.every((r) => r.label === 'Trouser')).toBe(true);
    let same = 0;
    for (let i = 0; i < 40; i++) {
      const hits = await json<{ results: { label: string }[] }>(await post((i % 2 ? A : B)('/v1/search?k=1'), await png(test, i), 'image/png'));
      if (hits.results[0]!.label === test.classNames![test.labels![i]!]) same++;
    }
    expect(same / 40).toBeGreaterThan(0.5);
  });

  it('classifies by kNN over the gallery and by the linear head, as the Node server does', async () => {
    await galleryReady();
    let knnRight = 0;
    let linearRight = 0;
    for (let i = 100; i < 140; i++) {
      const bytes = await png(test, i);
      const truth = test.classNames![test.labels![i]!];
      const knn = await json<{ predictions: { label: string }[] }>(await post(A('/v1/classify?method=knn&k=10'), bytes, 'image/png'));
      const linear = await json<{ predictions: { label: string; probability: number }[] }>(await post(B('/v1/classify?method=linear'), bytes, 'image/png'));
      const onNode = await json<{ predictions: { label: string; probability: number }[] }>(await post(`${node.url}/v1/classify?method=linear`, bytes, 'image/png'));
      expect(linear.predictions[0]!.label).toBe(onNode.predictions[0]!.label);
      expect(linear.predictions[0]!.probability).toBeCloseTo(onNode.predictions[0]!.probability, 4);
      if (knn.predictions[0]!.label === truth) knnRight++;
      if (linear.predictions[0]!.label === truth) linearRight++;
    }
    expect(knnRight / 40).toBeGreaterThan(0.5);
    expect(linearRight / 40).toBeGreaterThan(0.7);
  });

  it('a delete through one instance is gone from the next search on the other', async () => {
    await modelServed();
    const row = 2010; // a training image of this test's own, added to be deleted
    const id = `del-${row}`;
    const bytes = await png(train, row);
    expect((await post(A(`/v1/images?id=${id}&label=x`), bytes, 'image/png')).status).toBe(201);
    const top = async () => (await json<{ results: { id: string }[] }>(await post(B('/v1/search?k=3'), bytes, 'image/png'))).results.map((h) => h.id);
    expect((await top())[0]).toBe(id);
    expect((await fetch(A(`/v1/images/${id}`), { method: 'DELETE' })).status).toBe(204);
    expect(await top()).not.toContain(id);
    await expectProblem(await fetch(B(`/v1/images/${id}`)), 404);
    await expectProblem(await fetch(B(`/v1/images/${id}`), { method: 'DELETE' }), 404);
  });

  it('models, metrics and OpenAPI are served at the edge too', async () => {
    await modelServed();
    expect((await post(A('/v1/search?k=1'), await png(test, 0), 'image/png')).status).toBe(200); // counted below
    const models = await json<{ current: string; models: { version: string; state: string }[] }>(await fetch(B('/v1/models')));
    expect(models.current).toBe(bundled);
    expect(models.models.find((m) => m.version === bundled)?.state).toBe('serving');
    const metrics = await (await fetch(A('/metrics'))).text();
    expect(metrics).toMatch(/http_requests_total\{[^}]*route="\/v1\/search"/);
    expect(metrics).toMatch(new RegExp(`model_info\\{runtime="wasm[^"]*",version="${bundled}"\\} 1`));
    const doc = await json<{ paths: Record<string, unknown> }>(await fetch(A('/openapi.json')));
    expect(Object.keys(doc.paths)).toContain('/v1/embeddings');
  });
});

describe('admin at the edge, and the loop edge → R2 → worker → R2 → edge', () => {
  const admin = { Authorization: `Bearer ${TOKEN}` };

  it('admin routes need the token, and answer 503 where none is configured', async () => {
    await expectProblem(await postJson(A('/admin/retrain'), { dataset: { kind: 'fashion-mnist' } }), 401);
    await expectProblem(await postJson(A('/admin/retrain'), { dataset: { kind: 'fashion-mnist' } }, { Authorization: 'Bearer wrong-token-wrong-token' }), 401);
    await expectProblem(await postJson(B('/admin/retrain'), { dataset: { kind: 'fashion-mnist' } }, admin), 503, /ADMIN_TOKEN/);
    await expectProblem(await post(A('/admin/retrain'), 'x', 'text/plain', admin), 415);
    await expectProblem(await postJson(A('/admin/retrain'), { dataset: { kind: 'nope' } }, admin), 400);
    await expectProblem(await post(A('/admin/models/20990101T000000Z-000000/activate'), '', undefined, admin), 404);
  });

  it('a version whose files fail verification is skipped and reported; the old one keeps serving', async () => {
    await modelServed();
    const bad = await publishFixture(edge.store, { seed: 3, activate: false });
    const key = `models/${bad}/weights.bin`;
    const got = await edge.store.get(key);
    if (!got || !('body' in got)) throw new Error('fixture weights missing');
    const corrupt = got.body.slice();
    corrupt[10] = corrupt[10]! ^ 0xff;
    await edge.store.put(key, corrupt);
    await activateVersion(edge.store, bad, { force: true });
    try {
      for (const u of [A, B]) {
      const models = await until('failure reported', async () => {
        const m = await json<{ current: string; models: { version: string; state: string; error?: string }[] }>(await fetch(u('/v1/models')));
        return m.models.some((x) => x.version === bad && x.state === 'failed') && m;
      }, FOLLOW);
      expect(models.current).toBe(bundled);
      expect(models.models.find((x) => x.version === bad)?.error).toMatch(/weights\.bin.*sha256/);
      const ready = await json<{ failures: { version: string }[] }>(await fetch(u('/readyz')));
      expect(ready.failures.map((f) => f.version)).toContain(bad);
      }
      await expectProblem(await post(A('/v1/embeddings'), 'not an image', 'image/png'), 422); // still serving
    } finally {
      // Roll back through the admin route: latest points at the bundled model again.
      expect((await post(A(`/admin/models/${bundled}/activate`), '', undefined, admin)).status).toBe(202);
    }
  });

  it('a retrain queued at the edge is run by the worker on R2; both instances swap to its model and the gallery follows', async () => {
    await galleryReady();
    const res = await postJson(
      A('/admin/retrain'),
      { dataset: { kind: 'fashion-mnist', limit: 256 }, epochs: 1, maxSteps: 3, batchSize: 64, model: { backbone: { widths: [8, 16], blocks: [1, 1] }, expander: '64-64' }, force: true },
      admin,
    );
    const { job } = await json<{ job: { id: string; state: string } }>(res);
    expect(job.state).toBe('queued');
    expect((await readJob(edge.store, job.id))?.state).toBe('queued');

    const config = workerConfigFromEnv({
      POLL_INTERVAL_MS: '50',
      EXIT_WHEN_IDLE: 'true',
      EVAL_TRAIN_LIMIT: '256',
      EVAL_TEST_LIMIT: '200',
      PROBE_EPOCHS: '3',
      GATE_MIN_RANK: '1.01',
      GATE_MIN_STD: '0.0001',
      GATE_MIN_EMBEDDING_STD: '0.01',
      LOG_LEVEL: 'warn',
    });
    const backend = await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
    const outcomes: { state: string; version?: string; activated?: boolean }[] = [];
    const w = startWorker({ store: edge.store, config, backend, logger: createMemoryLogger(), onJobDone: (o) => outcomes.push(o) });
    await w.done;
    expect(outcomes[0], JSON.stringify(outcomes)).toMatchObject({ state: 'succeeded', activated: true });
    const fresh = outcomes[0]!.version!;

    const done = await json<{ state: string }>(await fetch(A(`/admin/jobs/${job.id}`), { headers: admin }));
    expect(done.state).toBe('succeeded');
    for (const u of [A, B]) await until('serving the retrained model', serves(u, fresh), FOLLOW);
    // The gallery was re-embedded under the new model: a gallery image finds itself.
    const g = gallery[0]!;
    const idx = g.i;
    const hits = await json<{ model: { version: string }; results: { id: string; score: number }[] }>(await post(B('/v1/search?k=1'), await png(train, idx), 'image/png'));
    expect(hits.model.version).toBe(fresh);
    expect(hits.results[0]).toMatchObject({ id: g.id });
    const embedded = await json<{ dimension: number }>(await post(A('/v1/embeddings'), await png(test, 0), 'image/png'));
    expect(embedded.dimension).not.toBe(0);
  }, 300_000);
});
