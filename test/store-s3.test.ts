import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { withLocalS3 } from './helpers/s3.js';
import { storeFromEnv } from '../shared/node/local-s3.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createS3Store } from '../shared/store/s3-store.js';
import { createMemoryStore } from '../shared/store/memory-store.js';
import { parseS3Config, s3ConfigFromEnv, S3ConfigError } from '../shared/store/config.js';
import { PreconditionFailedError } from '../shared/store/object-store.js';
import { contract, text } from './helpers/store-contract.js';

describe('S3 store on a real s3rver', () => {
  // Page size 4 forces pagination; s3rver's truncated ListObjectsV2 500s on Node 20 (DES tokens).
  const s3 = withLocalS3({ listPageSize: 4 });
  contract('s3rver', () => s3.current.store);

  it('a second store on the same server with default page size sees the same listing', async () => {
    const other = createS3Store(s3.current.config);
    await s3.current.store.put('shared/a', 'a');
    expect((await other.list('shared/')).map((o) => o.key)).toEqual(['shared/a']);
  });

  it('overwrites are atomic: concurrent readers get one whole version with its own ETag', async () => {
    const store = s3.current.store;
    const bodies = [new Uint8Array(200_000).fill(0x61), new Uint8Array(70_000).fill(0x62)];
    const md5 = (b: Uint8Array) => `"${createHash('md5').update(b).digest('hex')}"`;
    await store.put('atomic/obj', bodies[0]!);
    let writing = true;
    const writer = (async () => {
      for (let i = 1; i <= 30; i++) await store.put('atomic/obj', bodies[i % 2]!);
      writing = false;
    })();
    let reads = 0;
    const reader = async () => {
      while (writing) {
        const got = await store.get('atomic/obj');
        if (!got || !('body' in got)) throw new Error('object vanished during overwrite');
        expect([200_000, 70_000]).toContain(got.body.byteLength);
        expect(got.body.every((v) => v === got.body[0])).toBe(true);
        expect(got.etag).toBe(md5(got.body));
        reads++;
      }
    };
    await Promise.all([writer, reader(), reader()]);
    expect(reads).toBeGreaterThan(5);
  });

  it('reports s3rver as not enforcing conditional writes', () => {
    expect(s3.current.store.supportsConditionalWrites).toBe(false);
  });

  it('names the endpoint and operation when the server is unreachable', async () => {
    const dead = createS3Store(
      parseS3Config({ endpoint: 'http://127.0.0.1:9', accessKeyId: 'x', secretAccessKey: 'y', bucket: 'vicreg' }),
    );
    await expect(dead.get('models/latest.json')).rejects.toThrow(/get 'models\/latest.json' on s3 http:\/\/127.0.0.1:9/);
  });

  it('a missing bucket is an error, not a missing key', async () => {
    const wrong = createS3Store({ ...s3.current.config, bucket: 'no-such-bucket' });
    await expect(wrong.get('x')).rejects.toThrow(/NoSuchBucket/);
  });
});

describe('memory store', () => {
  const store = createMemoryStore();
  contract('memory', () => store);

  it('lets exactly one of many concurrent create-only writers win', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => store.put('race/claim', `writer-${i}`, { ifNoneMatch: '*' })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const losers = results.filter((r) => r.status === 'rejected');
    expect(losers.every((r) => (r as PromiseRejectedResult).reason instanceof PreconditionFailedError)).toBe(true);
  });

  it('lets exactly one of many concurrent ifMatch updates of the same ETag win', async () => {
    const { etag } = await store.put('race/counter', '0');
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => store.put('race/counter', String(i + 1), { ifMatch: etag })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
  });

  it('ETags are content hashes: same bytes, same ETag', async () => {
    const a = await store.put('h/a', 'same');
    const b = await store.put('h/b', 'same');
    const c = await store.put('h/c', 'different');
    expect(a.etag).toBe(b.etag);
    expect(c.etag).not.toBe(a.etag);
  });
});

describe('S3 config from the environment', () => {
  it('defaults region, bucket and path style; R2 region auto is accepted', () => {
    const c = s3ConfigFromEnv({ S3_ENDPOINT: 'https://acct.r2.cloudflarestorage.com', S3_REGION: 'auto' });
    expect(c).toMatchObject({ region: 'auto', bucket: 'vicreg', forcePathStyle: true, supportsConditionalWrites: true });
    const aws = s3ConfigFromEnv({});
    expect(aws).toMatchObject({ region: 'us-east-1', forcePathStyle: false });
    expect(aws.accessKeyId).toBeUndefined();
  });

  it('parses booleans and explains bad values by their variable names', () => {
    expect(s3ConfigFromEnv({ S3_ENDPOINT: 'http://x:1', S3_FORCE_PATH_STYLE: 'false', S3_CONDITIONAL_WRITES: '0' }))
      .toMatchObject({ forcePathStyle: false, supportsConditionalWrites: false });
    expect(() => s3ConfigFromEnv({ S3_CONDITIONAL_WRITES: 'maybe' })).toThrow(/S3_CONDITIONAL_WRITES must be true or false/);
    expect(() => s3ConfigFromEnv({ S3_ENDPOINT: 'not a url' })).toThrow(/S3_ENDPOINT/);
    expect(() => s3ConfigFromEnv({ S3_BUCKET: 'ab' })).toThrow(/S3_BUCKET must be 3–63/);
    expect(() => s3ConfigFromEnv({ S3_ACCESS_KEY_ID: 'only-one' })).toThrow(S3ConfigError);
    expect(() => s3ConfigFromEnv({ S3_ACCESS_KEY_ID: 'only-one' })).toThrow(/S3_SECRET_ACCESS_KEY/);
  });
});

describe('storeFromEnv (the main command\'s store)', () => {
  it('without S3_ENDPOINT starts the local server whose data survives a restart; with it, connects', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vicreg-env-'));
    try {
      const first = await storeFromEnv({ S3_LOCAL_PORT: '0' }, { localDir: dir });
      expect(first.local).not.toBeNull();
      await first.store.put('models/latest.json', '{"kept":true}');
      // A second process would get these env vars and reach the same server over S3.
      const remote = await storeFromEnv(first.local!.env);
      expect(remote.local).toBeNull();
      const viaEnv = await remote.store.get('models/latest.json');
      expect(viaEnv && 'body' in viaEnv && text(viaEnv.body)).toBe('{"kept":true}');
      await first.close();

      const again = await storeFromEnv({ S3_LOCAL_PORT: '0' }, { localDir: dir });
      const got = await again.store.get('models/latest.json');
      expect(got && 'body' in got && text(got.body)).toBe('{"kept":true}');
      await again.close();
      await expect(storeFromEnv({ S3_LOCAL_PORT: 'x' }, { localDir: dir })).rejects.toThrow(/S3_LOCAL_PORT must be a port/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
