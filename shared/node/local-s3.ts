import { createRequire } from 'node:module';
import { mkdir } from 'node:fs/promises';
import { parseS3Config, type S3Config } from '../store/config.js';
import { createS3Store } from '../store/s3-store.js';
import type { ObjectStore } from '../store/object-store.js';

/** The slice of s3rver 3.7.1 used here (it ships no types). */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
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
  let addr: { port: number };
  try {
    addr = await server.run();
  } catch (err) {
    const code = (err as { code?: string }).code;
    const hint = code === 'EADDRINUSE' ? ` (port ${opts.port} is in use; pick another or use 0 for a free one)` : '';
    throw new Error(`could not start the local S3 server on ${host}:${opts.port ?? 0}${hint}: ${String(err)}`, {
      cause: err,
    });
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
      await server.close();
    },
  };
}
