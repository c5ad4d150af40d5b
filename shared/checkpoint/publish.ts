import type { ObjectStore } from '../store/object-store.js';
import { PreconditionFailedError } from '../store/object-store.js';
import { openCheckpointFiles, parseManifest, verifyFiles, type OpenedCheckpoint } from './format.js';
import {
  CheckpointError,
  LATEST_KEY,
  LatestPointer,
  MANIFEST_JSON,
  MODELS_PREFIX,
  VERSION_RE,
  versionPrefix,
  zodMessage,
  type Manifest,
} from './manifest.js';
import { sha256Hex } from './sha256.js';

const decoder = new TextDecoder();

/** Publishing a version whose manifest already exists: versions are immutable. */
export class VersionExistsError extends Error {
  constructor(readonly version: string) {
    super(`checkpoint version ${version} already exists; versions are immutable, build a new version instead`);
    this.name = 'VersionExistsError';
  }
}

export interface PublishOptions {
  /** Move models/latest.json to this version once every file and the manifest are written. */
  activate: boolean;
  /** Read every file back and check its sha256 before writing the manifest (default true). */
  verify?: boolean;
  clock?: () => Date;
}

export interface PublishResult {
  manifest: Manifest;
  manifestEtag: string;
  latest: LatestPointer | null;
}

function contentType(name: string): string {
  return name.endsWith('.json') ? 'application/json' : 'application/octet-stream';
}

/**
 * Publish a checkpoint (files from buildCheckpointFiles): every file, then manifest.json (the commit
 * point, create-only), then — if `activate` — models/latest.json. A reader following latest.json
 * therefore only ever sees versions whose files are all in place.
 */
export async function publishCheckpoint(
  store: ObjectStore,
  files: ReadonlyMap<string, Uint8Array>,
  opts: PublishOptions,
): Promise<PublishResult> {
  const manifestBytes = files.get(MANIFEST_JSON);
  const manifest = parseManifest(manifestBytes);
  await verifyFiles(manifest, files); // refuse to publish what we would refuse to load
  const prefix = versionPrefix(manifest.version);
  if (await store.head(`${prefix}${MANIFEST_JSON}`)) throw new VersionExistsError(manifest.version);

  for (const name of Object.keys(manifest.files)) {
    const key = `${prefix}${name}`;
    const bytes = files.get(name)!;
    try {
      await store.put(key, bytes, { contentType: contentType(name), ifNoneMatch: '*' });
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err;
      // Left over from an interrupted publish of this same checkpoint: fine if identical, else refuse.
      const cur = await store.get(key);
      const same = cur && 'body' in cur && (await sha256Hex(cur.body)) === manifest.files[name]!.sha256;
      if (!same) throw new VersionExistsError(manifest.version);
    }
  }
  if (opts.verify ?? true) {
    for (const [name, entry] of Object.entries(manifest.files)) {
      const got = await store.get(`${prefix}${name}`);
      if (!got || !('body' in got)) throw new CheckpointError(name, 'vanished right after it was written', manifest.version);
      if (got.body.byteLength !== entry.size || (await sha256Hex(got.body)) !== entry.sha256)
        throw new CheckpointError(name, `reads back different from what was written to ${store.description}`, manifest.version);
    }
  }
  let manifestEtag: string;
  try {
    ({ etag: manifestEtag } = await store.put(`${prefix}${MANIFEST_JSON}`, manifestBytes!, {
      contentType: 'application/json',
      ifNoneMatch: '*',
    }));
  } catch (err) {
    if (err instanceof PreconditionFailedError) throw new VersionExistsError(manifest.version);
    throw err;
  }
  const latest = opts.activate ? await writeLatest(store, manifest.version, manifestEtag, opts.clock) : null;
  return { manifest, manifestEtag, latest };
}

async function writeLatest(
  store: ObjectStore,
  version: string,
  manifestEtag: string | undefined,
  clock: () => Date = () => new Date(),
): Promise<LatestPointer> {
  const pointer: LatestPointer = { version, activatedAt: clock().toISOString() };
  if (manifestEtag) pointer.manifestEtag = manifestEtag;
  await store.put(LATEST_KEY, JSON.stringify(pointer), { contentType: 'application/json' });
  return pointer;
}

/** Read and validate a version's manifest; null if the version does not exist. */
export async function readManifest(
  store: ObjectStore,
  version: string,
): Promise<{ manifest: Manifest; etag: string; bytes: Uint8Array } | null> {
  if (!VERSION_RE.test(version)) throw new CheckpointError(MANIFEST_JSON, `cannot exist: '${version}' is not a version id`, version);
  const got = await store.get(`${versionPrefix(version)}${MANIFEST_JSON}`);
  if (!got || !('body' in got)) return null;
  return { manifest: parseManifest(got.body, version), etag: got.etag, bytes: got.body };
}

/**
 * Point models/latest.json at an existing version (rollback = activating an older one). Refuses unknown
 * versions and, unless `force`, rejected ones.
 */
export async function activateVersion(
  store: ObjectStore,
  version: string,
  opts: { force?: boolean; clock?: () => Date } = {},
): Promise<LatestPointer> {
  const found = await readManifest(store, version);
  if (!found) throw new CheckpointError(MANIFEST_JSON, `not found: there is no version ${version} in ${store.description}`, version);
  if (found.manifest.state === 'rejected' && !opts.force)
    throw new CheckpointError(
      MANIFEST_JSON,
      `marks version ${version} as rejected (${found.manifest.rejectedReason}); activate with force to override`,
      version,
    );
  return writeLatest(store, version, found.etag, opts.clock);
}

/** The pointer the API follows, or null before the first activation. */
export async function readLatest(store: ObjectStore): Promise<LatestPointer | null> {
  const got = await store.get(LATEST_KEY);
  if (!got || !('body' in got)) return null;
  return parseLatest(got.body);
}

export function parseLatest(body: Uint8Array): LatestPointer {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(body));
  } catch (err) {
    throw new CheckpointError('latest.json', `is not valid JSON (${(err as Error).message})`);
  }
  const p = LatestPointer.safeParse(raw);
  if (!p.success) throw new CheckpointError('latest.json', `is invalid: ${zodMessage(p.error)}`);
  return p.data;
}

/** Every published version's manifest, oldest first. Unreadable manifests are skipped. */
export async function listVersions(store: ObjectStore): Promise<Manifest[]> {
  const objects = await store.list(MODELS_PREFIX);
  const versions = objects
    .map((o) => /^models\/([^/]+)\/manifest\.json$/.exec(o.key)?.[1])
    .filter((v): v is string => v !== undefined && VERSION_RE.test(v));
  const out: Manifest[] = [];
  // A few manifests at a time: fast on a remote store without opening hundreds of requests at once.
  for (let i = 0; i < versions.length; i += 8) {
    const batch = await Promise.all(
      versions.slice(i, i + 8).map((v) =>
        readManifest(store, v).catch((err: unknown) => {
          if (err instanceof CheckpointError) return null;
          throw err;
        }),
      ),
    );
    for (const m of batch) if (m) out.push(m.manifest);
  }
  return out.sort((a, b) => (a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
}

/**
 * Fetch and fully verify one version (see openCheckpointFiles). On error nothing changes for the
 * caller: keep serving the current model.
 */
export async function loadCheckpoint(store: ObjectStore, version: string): Promise<OpenedCheckpoint> {
  const found = await readManifest(store, version);
  if (!found) throw new CheckpointError(MANIFEST_JSON, `is missing: no version ${version} in ${store.description}`, version);
  const prefix = versionPrefix(version);
  const names = Object.keys(found.manifest.files);
  const bodies = await Promise.all(names.map((n) => store.get(`${prefix}${n}`)));
  const files = new Map<string, Uint8Array>();
  files.set(MANIFEST_JSON, found.bytes);
  names.forEach((n, i) => {
    const b = bodies[i];
    if (!b || !('body' in b)) throw new CheckpointError(n, 'is missing', version);
    files.set(n, b.body);
  });
  return openCheckpointFiles(files, version);
}
