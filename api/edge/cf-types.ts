/**
 * The subset of the Workers runtime types the edge entry uses (R2, Durable Objects, the execution
 * context), declared here rather than pulling @cloudflare/workers-types into a tsconfig shared with Node.
 */
export interface R2Conditional {
  etagMatches?: string;
  etagDoesNotMatch?: string;
}

export interface R2Object {
  key: string;
  size: number;
  etag: string;
  /** The ETag quoted, as S3 and HTTP write it. */
  httpEtag: string;
  uploaded: Date;
  httpMetadata?: { contentType?: string };
}

export interface R2ObjectBody extends R2Object {
  arrayBuffer(): Promise<ArrayBuffer>;
}

export interface R2Bucket {
  get(key: string, options?: { onlyIf?: R2Conditional }): Promise<R2ObjectBody | R2Object | null>;
  put(
    key: string,
    value: ArrayBuffer | ArrayBufferView | string,
    options?: { onlyIf?: R2Conditional; httpMetadata?: { contentType?: string } },
  ): Promise<R2Object | null>;
  head(key: string): Promise<R2Object | null>;
  delete(keys: string | string[]): Promise<void>;
  list(options?: { prefix?: string; cursor?: string; limit?: number }): Promise<{ objects: R2Object[]; truncated: boolean; cursor?: string }>;
}

export interface DurableObjectStorage {
  get<T = unknown>(key: string): Promise<T | undefined>;
  put(entries: Record<string, unknown>): Promise<void>;
  delete(keys: string[]): Promise<number>;
  list<T = unknown>(options?: { prefix?: string }): Promise<Map<string, T>>;
}

export interface DurableObjectState {
  readonly storage: DurableObjectStorage;
  blockConcurrencyWhile<T>(f: () => Promise<T>): Promise<T>;
}

export interface DurableObjectNamespace<Stub> {
  idFromName(name: string): unknown;
  get(id: unknown): Stub;
}

export interface ExecutionContext {
  waitUntil(work: Promise<unknown>): void;
  passThroughOnException(): void;
  props: unknown;
}
