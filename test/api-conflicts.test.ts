import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gallery } from '../api/gallery.js';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import type { ImageDataset } from '../shared/data/dataset.js';
import { listJobs } from '../shared/jobs/jobs.js';
import { createMemoryLogger } from '../shared/log.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { MemoryStore } from '../shared/store/memory-store.js';
import { b64, png, publishFixture } from './helpers/api-fixtures.js';

/**
 * The state-dependent problems of the Node API over real HTTP: 409 where the request is fine but the
 * deployment's state cannot answer it (a model without a linear head, a gallery without labels, an image
 * not yet indexed under the serving model), and the admin routes' 503 (no token configured) and 415
 * (a body that is not JSON). Each answer is problem+json and says what to do. (409 for activating a
 * gate-rejected version without force is in api-model-sanity.test.ts.)
 */

const TOKEN = 'test-admin-token-0123456789';
const admin = { Authorization: `Bearer ${TOKEN}` };
const servers: ApiServer[] = [];
let images: ImageDataset;
let shoe: Uint8Array<ArrayBuffer>;

beforeAll(async () => {
  await tf.setBackend('wasm');
  images = await loadFashionMnist('test', { limit: 4 });
  shoe = await png(images, 0);
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

/** A server on its own bucket serving the fixture network, published without a linear-probe head. */
async function serve(settings: { ADMIN_TOKEN?: string } = {}) {
  const store = new MemoryStore();
  const version = await publishFixture(store, { seed: 8, activate: true });
  const logger = createMemoryLogger();
  const api = await startTestApi({
    store,
    waitForModel: true,
    logger,
    settings: { POLL_INTERVAL_MS: 60_000, BATCH_WAIT_MS: 2, ...settings },
  });
  servers.push(api);
  const url = (p: string) => `${api.url}${p}`;
  return { api, store, version, logger, url };
}

async function expectProblem(res: Response, status: number, detail: RegExp): Promise<Record<string, unknown>> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(text) as Record<string, unknown>;
  expect(body).toMatchObject({ status, type: expect.stringMatching(/^urn:vicreg:problem:/), title: expect.any(String) });
  expect(body.detail).toMatch(detail);
  return body;
}

const pngType = { 'Content-Type': 'image/png' };

describe('409: the request is valid, the deployment cannot answer it yet', () => {
  it('classify by linear head on a model without one: 409 pointing at method=knn', async () => {
    const { url, version } = await serve();
    const res = await fetch(url('/v1/classify?method=linear'), { method: 'POST', body: shoe, headers: pngType });
    const p = await expectProblem(res, 409, new RegExp(`model ${version} has no linear-probe head; use method=knn with a labelled gallery`));
    expect(p.type).toBe('urn:vicreg:problem:conflict');
    // The same image is otherwise fine: it embeds.
    expect((await fetch(url('/v1/embeddings'), { method: 'POST', body: shoe, headers: pngType })).status).toBe(200);
  });

  it('classify by kNN with no labelled gallery image: 409 saying to add labelled images; one labelled image ends it', async () => {
    const { url } = await serve();
    const knn = () => fetch(url('/v1/classify?method=knn&k=5'), { method: 'POST', body: shoe, headers: pngType });
    const advice = /the gallery has no labelled images to vote; add images with a label \(POST \/v1\/images\) or use method=linear/;
    await expectProblem(await knn(), 409, advice); // empty gallery
    // Unlabelled images do not vote.
    expect((await fetch(url('/v1/images?id=unlabelled-1'), { method: 'POST', body: shoe, headers: pngType })).status).toBe(201);
    await expectProblem(await knn(), 409, advice);
    // Doing what the message says: a labelled image, and kNN answers.
    expect((await fetch(url('/v1/images?id=labelled-1&label=Ankle%20boot'), { method: 'POST', body: await png(images, 1), headers: pngType })).status).toBe(201);
    const res = await knn();
    expect(res.status, await res.clone().text()).toBe(200);
    expect(((await res.json()) as { predictions: { label: string }[] }).predictions[0]!.label).toBe('Ankle boot');
  });

  it('search by the id of a gallery image not yet indexed under the serving model: 409 saying to retry; an unknown id is 404', async () => {
    const { url, store, version } = await serve();
    // Written to the bucket by another replica: in the gallery, not in this replica's index.
    await new Gallery(store).put({ id: 'from-elsewhere', label: 'x', contentType: 'image/png', image: shoe });
    expect(((await (await fetch(url('/v1/images/from-elsewhere'))).json()) as { id: string }).id).toBe('from-elsewhere');
    const byId = () => fetch(url('/v1/search'), { method: 'POST', body: JSON.stringify({ id: 'from-elsewhere', k: 3 }), headers: { 'Content-Type': 'application/json' } });
    await expectProblem(await byId(), 409, new RegExp(`id: gallery image from-elsewhere is not indexed under model ${version} yet; retry shortly`));
    await expectProblem(
      await fetch(url('/v1/search'), { method: 'POST', body: JSON.stringify({ id: 'nowhere', k: 3 }), headers: { 'Content-Type': 'application/json' } }),
      404,
      /id: there is no gallery image nowhere/,
    );
    // Once this replica indexes it (here: the image written through it), the same search answers.
    const put = await fetch(url('/v1/images'), { method: 'POST', body: JSON.stringify({ id: 'from-elsewhere', base64: b64(shoe), label: 'x' }), headers: { 'Content-Type': 'application/json' } });
    expect(put.status).toBe(201);
    expect((await byId()).status).toBe(200);
  });
});

describe('admin: 503 without a token configured, 415 for a body that is not JSON', () => {
  it('every admin route answers 503 saying to set ADMIN_TOKEN when none is configured, even to a bearer token', async () => {
    const { url, version, logger } = await serve(); // no ADMIN_TOKEN
    expect(logger.records.some((r) => r.level === 'warn' && r.msg === 'ADMIN_TOKEN is not set: /admin routes answer 503')).toBe(true);
    const calls: [string, RequestInit][] = [
      ['/admin/jobs', {}],
      ['/admin/jobs/20990101T000000Z-abcdef', {}],
      ['/admin/retrain', { method: 'POST', body: JSON.stringify({ dataset: { kind: 'fashion-mnist' } }), headers: { 'Content-Type': 'application/json' } }],
      [`/admin/models/${version}/activate`, { method: 'POST' }],
      ['/admin/jobs/20990101T000000Z-abcdef/cancel', { method: 'POST', headers: admin }],
    ];
    for (const [path, init] of calls) {
      const p = await expectProblem(await fetch(url(path), init), 503, /no admin token is configured; set ADMIN_TOKEN and restart to enable \/admin/);
      expect(p.type, path).toBe('urn:vicreg:problem:admin-disabled');
    }
  });

  it('retrain and activate with a body that is not JSON: 415 naming application/json and what was sent; nothing queued or moved', async () => {
    const { url, store, version } = await serve({ ADMIN_TOKEN: TOKEN });
    const retrain = (body: BodyInit, headers: Record<string, string>) => fetch(url('/admin/retrain'), { method: 'POST', body, headers: { ...admin, ...headers } });
    await expectProblem(await retrain('dataset=fashion-mnist', { 'Content-Type': 'application/x-www-form-urlencoded' }), 415, /send the job request as application\/json, not application\/x-www-form-urlencoded/);
    await expectProblem(await retrain(JSON.stringify({ dataset: { kind: 'fashion-mnist' } }), { 'Content-Type': 'text/plain' }), 415, /as application\/json, not text\/plain/);
    await expectProblem(await retrain(new Uint8Array([0x7b, 0x7d]), {}), 415, /as application\/json, not no Content-Type/);
    const form = new FormData();
    form.append('dataset', 'fashion-mnist');
    await expectProblem(await retrain(form, {}), 415, /as application\/json, not multipart\/form-data/);
    expect(await listJobs(store)).toEqual([]);

    const other = await publishFixture(store, { seed: 9, activate: false });
    const activate = (body: string, type: string) => fetch(url(`/admin/models/${other}/activate`), { method: 'POST', body, headers: { ...admin, 'Content-Type': type } });
    await expectProblem(await activate('force=true', 'application/x-www-form-urlencoded'), 415, /send the activation options as application\/json, not application\/x-www-form-urlencoded/);
    await expectProblem(await activate('{"force": true}', 'text/plain'), 415, /as application\/json, not text\/plain/);
    expect(((await (await fetch(url('/v1/models/current'))).json()) as { version: string }).version).toBe(version);
    // The same requests as JSON are accepted.
    expect((await retrain(JSON.stringify({ dataset: { kind: 'fashion-mnist', limit: 100 }, epochs: 1 }), { 'Content-Type': 'application/json' })).status).toBe(202);
    expect((await activate('{"force": false}', 'application/json')).status).toBe(202);
  });
});
