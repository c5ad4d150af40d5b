/** POST /admin/retrain with `init`: a clear 400 for nothing to start from or another network, else queued. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../api/server.js';
import { startTestApi } from './helpers/test-api.js';
import { ensureModelPublished } from '../scripts/bundled-checkpoint.js';
import { createMemoryLogger } from '../shared/log.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { createMemoryStore } from '../shared/store/memory-store.js';

const TOKEN = 'init-test-admin-token-0123456789';
const servers: ApiServer[] = [];
let bundled: string;

async function serve(withModel: boolean): Promise<ApiServer> {
  const store = createMemoryStore();
  if (withModel) bundled = (await ensureModelPublished(store, path.resolve(import.meta.dirname, '../checkpoints/bundled'))).version;
  const api = await startTestApi({
    store,
    waitForModel: withModel,
    logger: createMemoryLogger(),
    settings: { ADMIN_TOKEN: TOKEN, POLL_INTERVAL_MS: 60_000 },
  });
  servers.push(api);
  return api;
}

beforeAll(() => initNodeBackend({ force: 'wasm', threads: 1, log: () => {} }), 60_000);
afterAll(() => Promise.all(servers.map((s) => s.close())));

const retrain = (api: ApiServer, body: unknown) =>
  fetch(`${api.url}/admin/retrain`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` } });
const detail = async (r: Response) => ((await r.json()) as { detail: string }).detail;

describe('retrain with init', () => {
  it('is a 400 when nothing is published or the version does not exist', async () => {
    const empty = await serve(false);
    const r1 = await retrain(empty, { dataset: { kind: 'gallery' }, init: 'latest' });
    expect(r1.status).toBe(400);
    expect(await detail(r1)).toMatch(/body\.init: nothing is published/);
    const api = await serve(true);
    const r2 = await retrain(api, { dataset: { kind: 'gallery' }, init: '20990101T000000Z-abcdef' });
    expect(r2.status).toBe(400);
    expect(await detail(r2)).toMatch(/no published version 20990101T000000Z-abcdef/);
  });

  it('is a 400 for another network, and queued for the same one or none given', async () => {
    const api = servers[1] ?? (await serve(true));
    const other = await retrain(api, { dataset: { kind: 'gallery' }, init: 'latest', model: { backbone: { widths: [8, 16], blocks: [1, 1] } } });
    expect(other.status).toBe(400);
    expect(await detail(other)).toMatch(new RegExp(`body\\.model: differs from the network of ${bundled}`));
    // The bundled checkpoint's own network, restated as a user would.
    const model = JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../checkpoints/bundled/manifest.json'), 'utf8')).training.config.model;
    const same = await retrain(api, { dataset: { kind: 'gallery' }, init: bundled, model: { backbone: { widths: model.backbone.widths }, expander: model.expander } });
    expect(same.status, await same.clone().text()).toBe(202);
    const none = await retrain(api, { dataset: { kind: 'gallery' }, init: 'latest' });
    expect(none.status).toBe(202);
  });
});
