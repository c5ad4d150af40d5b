import { createServer, type Server, type Socket } from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../api/server.js';
import { createMemoryLogger } from '../shared/log.js';
import { parseS3Config, s3ConfigFromEnv, S3ConfigError } from '../shared/store/config.js';
import { StoreUnavailableError } from '../shared/store/object-store.js';
import { createS3Store } from '../shared/store/s3-store.js';
import { startTestApi } from './helpers/test-api.js';

/**
 * docs/RELIABILITY.md, "the store is unreachable": a store that accepts connections and never answers
 * (a hung process, a half-dead proxy) must not hold a request forever. A real TCP server that accepts and
 * stays silent; the S3 store pointed at it with a short timeout gives up with StoreUnavailableError, and
 * the API answers 503 + Retry-After for it. No timings are asserted: the vitest timeouts only keep a
 * regression (a request that hangs) from hanging the run.
 */

const TIMEOUT_MS = 200;

let silent: Server;
let endpoint = '';
const sockets = new Set<Socket>();
let connections = 0;

beforeAll(async () => {
  silent = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.resume(); // read and drop the request; never write a byte
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent?.close(r));
});

const silentStore = () => createS3Store(parseS3Config({ endpoint, accessKeyId: 'x', secretAccessKey: 'y', bucket: 'vicreg', timeoutMs: TIMEOUT_MS }));

describe('S3 store against a store that accepts connections and never answers', () => {
  it('each operation gives up with StoreUnavailableError naming the operation and the endpoint', async () => {
    const store = silentStore();
    const before = connections;
    await expect(store.put('gallery/items/a.json', '{}')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.get('models/latest.json')).rejects.toThrow(new RegExp(`get 'models/latest.json' on s3 ${endpoint}.*TimeoutError`));
    await expect(store.list('gallery/')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.head('gallery/items/a.json')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.delete('gallery/items/a.json')).rejects.toBeInstanceOf(StoreUnavailableError);
    // The requests did reach the server: this is the silent-store case, not a refused connection.
    expect(connections).toBeGreaterThan(before);
  }, 60_000);

  it('the API answers a gallery write with 503 store-unavailable and Retry-After instead of waiting', async () => {
    const logger = createMemoryLogger();
    let api: ApiServer | null = null;
    try {
      api = await startTestApi({ store: silentStore(), logger });
      const image = await sharp({ create: { width: 28, height: 28, channels: 3, background: 'gray' } }).png().toBuffer();
      const res = await fetch(`${api.url}/v1/images?id=hung-1`, { method: 'POST', body: new Uint8Array(image), headers: { 'Content-Type': 'image/png' } });
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.headers.get('retry-after')).toBe('5');
      expect(((await res.json()) as { type: string }).type).toBe('urn:vicreg:problem:store-unavailable');
      expect(logger.records.some((r) => r['msg'] === 'object store unreachable' && String(r['error']).includes('TimeoutError'))).toBe(true);
    } finally {
      await api?.close();
    }
  }, 60_000);
});

describe('S3_TIMEOUT_MS', () => {
  it('defaults to 10 s and is read from the environment', () => {
    expect(s3ConfigFromEnv({ S3_ENDPOINT: endpoint }).timeoutMs).toBe(10_000);
    expect(s3ConfigFromEnv({ S3_ENDPOINT: endpoint, S3_TIMEOUT_MS: '2500' }).timeoutMs).toBe(2500);
  });

  it('refuses a value that is not a whole number of milliseconds, or too short to reach any store, by name', () => {
    expect(() => s3ConfigFromEnv({ S3_TIMEOUT_MS: '5s' })).toThrow(S3ConfigError);
    expect(() => s3ConfigFromEnv({ S3_TIMEOUT_MS: '5s' })).toThrow(/S3_TIMEOUT_MS must be a whole number of milliseconds/);
    expect(() => s3ConfigFromEnv({ S3_TIMEOUT_MS: '10' })).toThrow(/S3_TIMEOUT_MS: must be at least 100/);
  });
});
