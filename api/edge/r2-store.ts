import {
  ObjectStoreError,
  PreconditionFailedError,
  StoreUnavailableError,
  type GetOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
  type StoredObject,
} from '../../shared/store/object-store.js';
import type { R2Bucket, R2Conditional, R2Object } from './cf-types.js';

/** R2 compares bare ETags; the ObjectStore port speaks quoted ones, as S3 and HTTP do. */
const bare = (etag: string): string => etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');

const info = (o: R2Object): ObjectInfo => ({ key: o.key, size: o.size, etag: o.httpEtag, lastModified: o.uploaded });

/**
 * R2's codes for a failure of R2 itself, where the same call may succeed later: unspecified (what the
 * runtime reports for a 5xx without details), internal error, service unavailable, client disconnect,
 * rate limited.
 */
const TRANSIENT_CODES = new Set([0, 10001, 10043, 10054, 10058]);

/**
 * The binding throws a plain Error whose message ends in R2's code ("put: … (10001)"). Any other code
 * is R2 refusing this request (invalid key, too large, …): retrying cannot help, so it stays a 500, as a
 * 4xx from S3 does. An error without a code means the runtime could not reach R2 at all.
 */
function isUnavailable(err: unknown): boolean {
  const code = /\((\d+)\)\s*$/.exec(err instanceof Error ? err.message : String(err))?.[1];
  return code === undefined || TRANSIENT_CODES.has(Number(code));
}

/**
 * ObjectStore over an R2 bucket binding. Conditional puts go through R2's `onlyIf`, which the bucket
 * checks and applies atomically, so job claims and the latest pointer keep their compare-and-swap
 * semantics at the edge. Also usable from Node on Miniflare's local R2 (the same binding API).
 */
export class R2Store implements ObjectStore {
  readonly supportsConditionalWrites = true;

  constructor(
    private readonly bucket: R2Bucket,
    readonly description = 'R2 bucket binding',
  ) {}

  async get(key: string, opts: GetOptions = {}): Promise<StoredObject | { notModified: true } | null> {
    const onlyIf: R2Conditional | undefined = opts.ifNoneMatch !== undefined ? { etagDoesNotMatch: bare(opts.ifNoneMatch) } : undefined;
    return this.call('get', key, async () => {
      const o = await this.bucket.get(key, onlyIf ? { onlyIf } : undefined);
      if (o === null) return null;
      // A failed precondition returns the object's metadata without a body.
      if (!('arrayBuffer' in o)) return { notModified: true as const };
      const obj: StoredObject = { body: new Uint8Array(await o.arrayBuffer()), etag: o.httpEtag };
      if (o.httpMetadata?.contentType) obj.contentType = o.httpMetadata.contentType;
      return obj;
    });
  }

  async put(key: string, body: Uint8Array | string, opts: PutOptions = {}): Promise<{ etag: string }> {
    // etagDoesNotMatch '*' is create-only; etagMatches on a missing key fails, as If-Match does.
    const onlyIf: R2Conditional | undefined =
      opts.ifNoneMatch === '*' ? { etagDoesNotMatch: '*' } : opts.ifMatch !== undefined ? { etagMatches: bare(opts.ifMatch) } : undefined;
    // Miniflare's binding proxy (Node → local R2) rebuilds views by constructor name, so a Node Buffer
    // (a Uint8Array subclass workerd does not have) becomes a plain Uint8Array of exactly its bytes.
    const value = typeof body === 'string' || body.constructor === Uint8Array ? body : new Uint8Array(body);
    const o = await this.call('put', key, () =>
      this.bucket.put(key, value, {
        ...(onlyIf ? { onlyIf } : {}),
        ...(opts.contentType ? { httpMetadata: { contentType: opts.contentType } } : {}),
      }),
    );
    if (o === null) {
      throw new PreconditionFailedError(key, opts.ifNoneMatch === '*' ? `${key} already exists` : `${key} changed since it was read (ETag mismatch)`);
    }
    return { etag: o.httpEtag };
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const o = await this.call('head', key, () => this.bucket.head(key));
    return o ? info(o) : null;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.call('list', prefix, () => this.bucket.list({ prefix, limit: 1000, ...(cursor ? { cursor } : {}) }));
      out.push(...page.objects.map(info));
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    await this.call('delete', key, () => this.bucket.delete(key));
  }

  /** Runs one binding call; what it throws becomes StoreUnavailableError (→ 503) or ObjectStoreError, as in the S3 store. */
  private async call<T>(op: string, key: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (err) {
      const Err = isUnavailable(err) ? StoreUnavailableError : ObjectStoreError;
      const msg = err instanceof Error ? err.message : String(err);
      throw new Err(`${op} '${key}' on ${this.description} failed (${msg})`, { cause: err });
    }
  }
}
