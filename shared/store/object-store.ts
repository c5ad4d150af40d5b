/**
 * The one storage interface the worker and the API share. Implementations: S3-compatible (AWS S3, R2,
 * MinIO, s3rver) and in-memory (enforces conditional writes; used to test claiming protocols).
 */
export interface StoredObject {
  body: Uint8Array;
  etag: string;
  contentType?: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  etag: string;
  lastModified?: Date;
}

export interface PutOptions {
  contentType?: string;
  /** Write only if the current object's ETag equals this (compare-and-swap). */
  ifMatch?: string;
  /** '*' = write only if no object exists at the key (create-only). */
  ifNoneMatch?: '*';
}

export interface GetOptions {
  /** Return { notModified: true } when the object's ETag still equals this. */
  ifNoneMatch?: string;
}

/** Thrown by put() when a conditional write's precondition fails (HTTP 412 / 409). */
export class PreconditionFailedError extends Error {
  constructor(readonly key: string, message = `precondition failed for ${key}`) {
    super(message);
    this.name = 'PreconditionFailedError';
  }
}

/** Any failure talking to the store other than "missing" or "precondition failed"; names the operation. */
export class ObjectStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ObjectStoreError';
  }
}

/**
 * The store could not be reached (refused, reset, timed out) or answered 5xx: the operation may not have
 * happened, and the same call may succeed later. The API answers 503 with Retry-After for it.
 */
export class StoreUnavailableError extends ObjectStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

export interface ObjectStore {
  /** True when ifMatch / ifNoneMatch on put are enforced by the server. */
  readonly supportsConditionalWrites: boolean;
  /** A short human description (endpoint and bucket) for logs. */
  readonly description: string;
  get(key: string, opts?: GetOptions): Promise<StoredObject | { notModified: true } | null>;
  put(key: string, body: Uint8Array | string, opts?: PutOptions): Promise<{ etag: string }>;
  head(key: string): Promise<ObjectInfo | null>;
  /** All objects under the prefix, following pagination, sorted by key. */
  list(prefix: string): Promise<ObjectInfo[]>;
  delete(key: string): Promise<void>;
}
