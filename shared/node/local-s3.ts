import { createRequire } from 'node:module';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { dirname } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { parseS3Config, s3ConfigFromEnv, wantsLocalS3, type S3Config } from '../store/config.js';
import { createS3Store } from '../store/s3-store.js';
import type { ObjectStore } from '../store/object-store.js';

/** The slice of s3rver 3.7.1 used here (it ships no types). */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  /** With a trailing callback: the http.Server, listening once the callback runs. */
  listen(...args: unknown[]): Server;
  close(): Promise<void>;
  /** Set while listening. */
  httpServer?: Server;
  store: FilesystemStore;
  logger: { close(): void };
}
interface S3rverObject {
  bucket: string;
  key: string;
  metadata: unknown;
  content: Buffer | Readable;
}
type StoreMethod = (bucket: string, key: string, ...rest: unknown[]) => Promise<unknown>;
interface FilesystemStore {
  getObject: StoreMethod;
  deleteObject: StoreMethod;
  putObject: (object: S3rverObject) => Promise<{ size: number; md5: string }>;
  getResourcePath(bucket: string, key: string, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: unknown, md5: string): Promise<void>;
  copyObject: (srcBucket: string, srcKey: string, destBucket: string, destKey: string, ...rest: unknown[]) => Promise<unknown>;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance;

// s3rver's fixed credentials: it verifies SigV4 signatures against this key pair.
const LOCAL_KEY = 'S3RVER';

export interface LocalS3Options {
  /** Folder for the objects; created if missing. Data survives restarts. */
  dir: string;
  /** 0 (default) = a free port. */
  port?: number;
  bucket?: string;
  host?: string;
  /** Page size for the store's listings (tests lower it to exercise pagination). */
  listPageSize?: number;
}

export interface LocalS3 {
  endpoint: string;
  bucket: string;
  dir: string;
  /** Settings a separate process can use to reach this server. */
  config: S3Config;
  /** Env vars equivalent to `config`, for child processes. */
  env: Record<string, string>;
  store: ObjectStore;
  close(): Promise<void>;
}

/**
 * Start s3rver on loopback with its data under `dir`, create the bucket, and return a store on it.
 * s3rver ignores conditional writes, so the store reports supportsConditionalWrites=false.
 */
export async function startLocalS3(opts: LocalS3Options): Promise<LocalS3> {
  const host = opts.host ?? '127.0.0.1';
  const bucket = opts.bucket ?? 'vicreg';
  await mkdir(opts.dir, { recursive: true });
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;
  const server = new S3rver({
    address: host,
    port: opts.port ?? 0,
    directory: opts.dir,
    silent: true,
    configureBuckets: [{ name: bucket }],
  });
  makeObjectsAtomic(server.store);
  rejectListenErrors(server);
  let addr: { port: number };
  try {
    addr = await server.run();
  } catch (err) {
    server.logger.close();
    const code = (err as { code?: string }).code;
    const hint = code === 'EADDRINUSE' ? ` (port ${opts.port} is in use; pick another or use 0 for a free one)` : '';
    throw Object.assign(
      new Error(`could not start the local S3 server on ${host}:${opts.port ?? 0}${hint}: ${(err as Error).message ?? String(err)}`, { cause: err }),
      code ? { code } : {},
    );
  }
  const endpoint = `http://${host}:${addr.port}`;
  const config = parseS3Config({
    endpoint,
    region: 'us-east-1',
    bucket,
    forcePathStyle: true,
    accessKeyId: LOCAL_KEY,
    secretAccessKey: LOCAL_KEY,
    supportsConditionalWrites: false,
    listPageSize: opts.listPageSize ?? 1000,
  });
  const env = {
    S3_ENDPOINT: endpoint,
    S3_REGION: 'us-east-1',
    S3_BUCKET: bucket,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: LOCAL_KEY,
    S3_SECRET_ACCESS_KEY: LOCAL_KEY,
    S3_CONDITIONAL_WRITES: 'false',
  };
  let closed = false;
  return {
    endpoint,
    bucket,
    dir: opts.dir,
    config,
    env,
    store: createS3Store(config),
    async close() {
      if (closed) return;
      closed = true;
      const closing = server.close();
      // Close waits for open connections, and a client that keeps its keep-alive connections busy (an API
      // polling models/latest.json) would hold it open for ever: cut them, as a stopped server would.
      server.httpServer?.closeAllConnections();
      await closing;
    },
  };
}

/**
 * s3rver's listen() resolves on 'listening' but never handles 'error': a port in use is an uncaught
 * EADDRINUSE that kills the process with a raw stack. Make run() reject instead.
 */
function rejectListenErrors(s3rver: S3rverInstance): void {
  const listen = s3rver.listen.bind(s3rver);
  s3rver.listen = ((...args: unknown[]) =>
    new Promise<Server>((resolve, reject) => {
      const http = listen(...args, () => {
        http.off('error', reject);
        resolve(http);
      });
      http.once('error', reject);
    })) as unknown as S3rverInstance['listen'];
}

/**
 * s3rver overwrites an object in place (truncate, then write), answers the PUT before the write is
 * flushed, and keeps the MD5 ETag in a side file. So a GET racing (or just following) a PUT of the same
 * key can get a torn body, a dropped connection, or an ETag belonging to other content — which would make
 * an ETag-following watcher miss an update. Real S3 replaces objects atomically. Here PUT writes a temp
 * file and renames it, every operation on one key is serialised, and GET bodies are read fully while the
 * key is held: the same guarantee, for the in-process server.
 */
function makeObjectsAtomic(store: FilesystemStore): void {
  const tails = new Map<string, Promise<void>>();
  async function exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = tails.get(id) ?? Promise.resolve();
    let release!: () => void;
    const tail = prev.then(() => new Promise<void>((r) => (release = r)));
    tails.set(id, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (tails.get(id) === tail) tails.delete(id);
    }
  }
  const id = (bucket: string, key: string) => `${bucket}\n${key}`;

  const getObject = store.getObject.bind(store);
  store.getObject = (bucket, key, ...rest) =>
    exclusive(id(bucket, key), async () => {
      const object = (await getObject(bucket, key, ...rest)) as { content?: Readable | null } | null;
      if (object?.content) object.content = new PassThrough().end(await readAll(object.content));
      return object;
    });
  store.putObject = (object) =>
    exclusive(id(object.bucket, object.key), async () => {
      const content = Buffer.isBuffer(object.content) ? object.content : await readAll(object.content);
      const md5 = createHash('md5').update(content).digest('hex');
      const path = store.getResourcePath(object.bucket, object.key, 'object');
      await mkdir(dirname(path), { recursive: true });
      // The temp name does not end in ._S3rver_object, so listings ignore it.
      const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, content);
      await rename(tmp, path);
      await store.putMetadata(object.bucket, object.key, object.metadata, md5);
      return { size: content.length, md5 };
    });
  const deleteObject = store.deleteObject.bind(store);
  store.deleteObject = (bucket, key, ...rest) => exclusive(id(bucket, key), () => deleteObject(bucket, key, ...rest));
  const copyObject = store.copyObject.bind(store);
  store.copyObject = (srcBucket, srcKey, destBucket, destKey, ...rest) =>
    exclusive(id(destBucket, destKey), () => copyObject(srcBucket, srcKey, destBucket, destKey, ...rest));
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

export interface StoreFromEnv {
  store: ObjectStore;
  /** Set when the embedded local server was started (no S3_ENDPOINT). */
  local: LocalS3 | null;
  close(): Promise<void>;
}

/**
 * The main command's store: S3/R2/MinIO when S3_ENDPOINT is set, otherwise the embedded s3rver with
 * its data under `localDir` (default .data/s3, git-ignored) on S3_LOCAL_PORT (default 4568; 0 = free).
 */
export async function storeFromEnv(
  env: Record<string, string | undefined>,
  opts: { localDir?: string; port?: number } = {},
): Promise<StoreFromEnv> {
  if (!wantsLocalS3(env)) {
    const store = createS3Store(s3ConfigFromEnv(env));
    return { store, local: null, close: async () => {} };
  }
  const portEnv = env['S3_LOCAL_PORT'];
  const port = opts.port ?? (portEnv ? Number(portEnv) : 4568);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`S3_LOCAL_PORT must be a port number (0 = any free port), got '${portEnv}'`);
  const dir = opts.localDir ?? '.data/s3';
  let local: LocalS3;
  try {
    local = await startLocalS3({ dir, port, bucket: env['S3_BUCKET'] || 'vicreg' });
  } catch (err) {
    if ((err as { code?: string }).code !== 'EADDRINUSE') throw err;
    throw Object.assign(
      new Error(
        `the embedded local S3 server cannot listen on port ${port} (S3_LOCAL_PORT): it is in use, by another \`npm start\` ` +
          `or another program. Stop that, or set S3_LOCAL_PORT to a free port (0 = any free port); a second \`npm start\` ` +
          `also needs its own S3_LOCAL_DIR (this one uses ${dir})`,
        { cause: err },
      ),
      { code: 'EADDRINUSE' },
    );
  }
  return { store: local.store, local, close: () => local.close() };
}
