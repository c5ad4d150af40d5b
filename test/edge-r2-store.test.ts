import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { R2Bucket } from '../api/edge/cf-types.js';
import { R2Store } from '../api/edge/r2-store.js';
import { PreconditionFailedError } from '../shared/store/object-store.js';
import { contract } from './helpers/store-contract.js';

// R2 as workerd runs it (Miniflare's local R2), reached through the same binding API a Worker uses.
describe('R2 store on local R2 (Miniflare)', () => {
  let mf: Miniflare;
  let store: R2Store;
  beforeAll(async () => {
    mf = new Miniflare({ modules: true, script: 'export default { fetch: () => new Response(null) }', r2Buckets: ['BUCKET'] });
    store = new R2Store((await mf.getR2Bucket('BUCKET')) as unknown as R2Bucket, 'local R2');
  });
  afterAll(() => mf?.dispose());

  contract('R2', () => store);

  it('lets exactly one of many concurrent create-only writers win', async () => {
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => store.put('race/claim', `writer-${i}`, { ifNoneMatch: '*' })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.every((r) => r.status === 'fulfilled' || r.reason instanceof PreconditionFailedError)).toBe(true);
  });

  it('lets exactly one of many concurrent ifMatch updates of the same ETag win', async () => {
    const { etag } = await store.put('race/counter', '0');
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.put('race/counter', String(i + 1), { ifMatch: etag })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('stores a Node Buffer (a view into a larger pool) as exactly its bytes', async () => {
    const pooled = Buffer.from('0123456789abcdef').subarray(4, 12);
    await store.put('view/part', pooled);
    const got = await store.get('view/part');
    expect(got && 'body' in got && Buffer.from(got.body).toString()).toBe('456789ab');
  });

  it('keeps the content type and reports quoted ETags, as S3 does', async () => {
    const { etag } = await store.put('ct/x.json', '{}', { contentType: 'application/json' });
    expect(etag).toMatch(/^"[0-9a-f]+"$/);
    const got = await store.get('ct/x.json');
    expect(got && 'body' in got && got.contentType).toBe('application/json');
  });
});
