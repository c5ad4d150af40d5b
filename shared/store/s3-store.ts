import {
  S3Client,
  GetObjectCommand,
  PutObjectCommand,
  HeadObjectCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  ListObjectsCommand,
  S3ServiceException,
  type _Object,
} from '@aws-sdk/client-s3';
import type { S3Config } from './config.js';
import {
  ObjectStoreError,
  PreconditionFailedError,
  StoreUnavailableError,
  type GetOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type StoredObject,
} from './object-store.js';

export { ObjectStoreError, StoreUnavailableError };

const encoder = new TextEncoder();

function statusOf(err: unknown): number | undefined {
  if (err instanceof S3ServiceException) return err.$metadata?.httpStatusCode;
  const m = (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata;
  return m?.httpStatusCode;
}

/** Socket-level failures: no answer from the store at all. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** No answer (after the SDK's own retries) or a 5xx: the store is down or overloaded, not refusing this request. */
function isUnavailable(err: unknown): boolean {
  const status = statusOf(err);
  if (status !== undefined) return status >= 500;
  const e = err as { code?: string; name?: string } | null;
  return (e?.code !== undefined && NETWORK_CODES.has(e.code)) || e?.name === 'TimeoutError';
}

function isMissing(err: unknown): boolean {
  const name = (err as { name?: string } | null)?.name;
  // HEAD 404s carry no body, so the SDK names them 'NotFound'; a missing bucket is not "missing key".
  return statusOf(err) === 404 && name !== 'NoSuchBucket';
}

/**
 * ObjectStore over any S3-compatible endpoint. Bodies are always sent as bytes and checksums only when
 * required: streamed bodies get aws-chunked framing that s3rver stores verbatim, and default CRC32
 * headers are refused by some third-party servers.
 */
export function createS3Store(config: S3Config, client?: S3Client): ObjectStore {
  const s3 =
    client ??
    new S3Client({
      region: config.region,
      endpoint: config.endpoint,
      forcePathStyle: config.forcePathStyle,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Options for the SDK's default handler (NodeHttpHandler on Node), so this module stays free of
      // Node imports. Without them a store that accepts connections but never answers holds a request
      // forever; a silent socket fails as TimeoutError, which the SDK retries and fail() maps to 503.
      requestHandler: { connectionTimeout: config.timeoutMs, socketTimeout: config.timeoutMs },
      ...(config.accessKeyId && config.secretAccessKey
        ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } }
        : {}),
    });
  const Bucket = config.bucket;
  const description = `s3 ${config.endpoint ?? `aws:${config.region}`} bucket ${Bucket}`;
  // s3rver's truncated ListObjectsV2 500s on Node >= 17 (DES continuation tokens); remember to use V1.
  let listV1 = false;

  const fail = (op: string, key: string, err: unknown): never => {
    if (err instanceof PreconditionFailedError || err instanceof ObjectStoreError) throw err;
    const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    const Err = isUnavailable(err) ? StoreUnavailableError : ObjectStoreError;
    throw new Err(`${op} '${key}' on ${description} failed (${msg})`, { cause: err });
  };

  async function head(key: string): Promise<ObjectInfo | null> {
    try {
      const r = await s3.send(new HeadObjectCommand({ Bucket, Key: key }));
      return { key, size: r.ContentLength ?? 0, etag: r.ETag ?? '', lastModified: r.LastModified };
    } catch (err) {
      if (isMissing(err)) return null;
      return fail('head', key, err);
    }
  }

  async function listV2(prefix: string): Promise<_Object[]> {
    const out: _Object[] = [];
    let token: string | undefined;
    do {
      const r = await s3.send(
        new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: config.listPageSize }),
      );
      out.push(...(r.Contents ?? []));
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async function listWithMarkers(prefix: string): Promise<_Object[]> {
    const out: _Object[] = [];
    let marker: string | undefined;
    for (;;) {
      const r = await s3.send(
        new ListObjectsCommand({ Bucket, Prefix: prefix, Marker: marker, MaxKeys: config.listPageSize }),
      );
      const page = r.Contents ?? [];
      out.push(...page);
      // Without a delimiter V1 omits NextMarker; the last key is the marker.
      const last = r.NextMarker ?? page[page.length - 1]?.Key;
      if (!r.IsTruncated || !last) return out;
      marker = last;
    }
  }

  return {
    supportsConditionalWrites: config.supportsConditionalWrites,
    description,

    async get(key: string, opts: GetOptions = {}) {
      try {
        const r = await s3.send(new GetObjectCommand({ Bucket, Key: key, IfNoneMatch: opts.ifNoneMatch }));
        const body = r.Body ? await r.Body.transformToByteArray() : new Uint8Array();
        const obj: StoredObject = { body, etag: r.ETag ?? '' };
        if (r.ContentType) obj.contentType = r.ContentType;
        return obj;
      } catch (err) {
        if (statusOf(err) === 304) return { notModified: true as const };
        if (isMissing(err)) return null;
        return fail('get', key, err);
      }
    },

    async put(key: string, body: Uint8Array | string, opts: PutOptions = {}) {
      const bytes = typeof body === 'string' ? encoder.encode(body) : body;
      if (!config.supportsConditionalWrites && (opts.ifMatch !== undefined || opts.ifNoneMatch !== undefined)) {
        // Best effort for servers that ignore the headers (s3rver): check first. Not atomic — a
        // concurrent writer can slip in between; real S3/R2 enforce it server-side instead.
        const cur = await head(key);
        if (opts.ifNoneMatch === '*' && cur) throw new PreconditionFailedError(key, `${key} already exists`);
        if (opts.ifMatch !== undefined && (!cur || cur.etag !== opts.ifMatch))
          throw new PreconditionFailedError(key, `${key} changed since it was read (ETag mismatch)`);
      }
      try {
        const r = await s3.send(
          new PutObjectCommand({
            Bucket,
            Key: key,
            Body: bytes,
            ContentLength: bytes.byteLength,
            ContentType: opts.contentType,
            ...(config.supportsConditionalWrites ? { IfMatch: opts.ifMatch, IfNoneMatch: opts.ifNoneMatch } : {}),
          }),
        );
        return { etag: r.ETag ?? '' };
      } catch (err) {
        const status = statusOf(err);
        if (status === 412 || status === 409) throw new PreconditionFailedError(key);
        // A conditional put on a key that vanished: S3 answers 404 for If-Match on a missing object.
        if (status === 404 && opts.ifMatch !== undefined && (err as { name?: string }).name !== 'NoSuchBucket')
          throw new PreconditionFailedError(key, `${key} does not exist (If-Match)`);
        return fail('put', key, err);
      }
    },

    head,

    async list(prefix: string) {
      let objects: _Object[];
      try {
        if (listV1) objects = await listWithMarkers(prefix);
        else {
          try {
            objects = await listV2(prefix);
          } catch (err) {
            if (statusOf(err) !== 500) throw err;
            objects = await listWithMarkers(prefix);
            listV1 = true;
          }
        }
      } catch (err) {
        return fail('list', prefix, err);
      }
      return objects
        .filter((o): o is _Object & { Key: string } => typeof o.Key === 'string')
        .map((o) => ({ key: o.Key, size: o.Size ?? 0, etag: o.ETag ?? '', lastModified: o.LastModified }))
        .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },

    async delete(key: string) {
      try {
        await s3.send(new DeleteObjectCommand({ Bucket, Key: key }));
      } catch (err) {
        if (isMissing(err)) return;
        fail('delete', key, err);
      }
    },
  };
}
