import type { ObjectStore } from '../store/object-store.js';
import { PreconditionFailedError } from '../store/object-store.js';
import { iso, type Clock } from './clock.js';
import {
  JobFile,
  JobId,
  JOBS_PREFIX,
  RetrainRequest,
  TERMINAL_STATES,
  appendLog,
  jobIdFromKey,
  jobKey,
  type JobState,
  type RetrainRequestInput,
} from './schema.js';

/** Job files on an ObjectStore. Pure: no Node modules; used by the API (create, cancel) and the worker. */

export interface VersionedJob {
  job: JobFile;
  etag: string;
}

/** Thrown when a job file exists but does not parse: names the key and the first problem. */
export class InvalidJobFileError extends Error {
  constructor(readonly key: string, detail: string) {
    super(`job file ${key} is not a valid job: ${detail}`);
    this.name = 'InvalidJobFileError';
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Time-sortable id: 20250102T030405Z-1a2b3c4d (so listing by key is listing by creation time). */
export function newJobId(clock: Clock): string {
  const t = new Date(clock.now()).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const rand = new Uint8Array(4);
  globalThis.crypto.getRandomValues(rand);
  return `${t}-${[...rand].map((b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export function encodeJob(job: JobFile): Uint8Array {
  return enc.encode(JSON.stringify(JobFile.parse(job), null, 1));
}

function decodeJob(key: string, body: Uint8Array): JobFile {
  let raw: unknown;
  try {
    raw = JSON.parse(dec.decode(body));
  } catch (e) {
    throw new InvalidJobFileError(key, `not JSON (${(e as Error).message})`);
  }
  const parsed = JobFile.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidJobFileError(key, `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * Validate the request and write a new queued job (create-only where the store enforces it).
 * Throws the zod error for a bad request: callers at an HTTP boundary turn it into a 400.
 */
export async function createJob(
  store: ObjectStore,
  request: RetrainRequestInput,
  clock: Clock,
  opts: { id?: string } = {},
): Promise<JobFile> {
  const id = JobId.parse(opts.id ?? newJobId(clock));
  const now = iso(clock);
  const job: JobFile = {
    id,
    request: RetrainRequest.parse(request),
    state: 'queued',
    createdAt: now,
    updatedAt: now,
    attempts: 0,
    logTail: [`${now} queued`],
  };
  await store.put(jobKey(id), encodeJob(job), { contentType: 'application/json', ifNoneMatch: '*' });
  return job;
}

/** The job and its ETag (for compare-and-swap updates), or null if there is no such job. */
export async function readJobVersioned(store: ObjectStore, id: string): Promise<VersionedJob | null> {
  if (!JobId.safeParse(id).success) return null;
  const got = await store.get(jobKey(id));
  if (got === null || 'notModified' in got) return null;
  return { job: decodeJob(jobKey(id), got.body), etag: got.etag };
}

export async function readJob(store: ObjectStore, id: string): Promise<JobFile | null> {
  return (await readJobVersioned(store, id))?.job ?? null;
}

/**
 * All jobs, newest first; optionally only some states. A job file that does not parse is skipped
 * (reported through onInvalid) so one bad file cannot hide the others.
 */
export async function listJobs(
  store: ObjectStore,
  opts: { states?: readonly JobState[]; onInvalid?: (err: Error) => void } = {},
): Promise<JobFile[]> {
  const infos = await store.list(JOBS_PREFIX);
  const out: JobFile[] = [];
  for (const info of infos) {
    const id = jobIdFromKey(info.key);
    if (id === null) continue; // state snapshots etc. live under jobs/<id>/
    try {
      const v = await readJobVersioned(store, id);
      if (v && (!opts.states || opts.states.includes(v.job.state))) out.push(v.job);
    } catch (e) {
      if (e instanceof InvalidJobFileError) opts.onInvalid?.(e);
      else throw e;
    }
  }
  return out.sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1));
}

/**
 * Read-modify-write with compare-and-swap where the store enforces it (retried on a lost race);
 * elsewhere the freshest copy is re-read just before writing, which narrows but cannot close the race.
 * `mutate` returns the new job, or null to leave it unchanged. Returns null when the job does not exist.
 */
export async function updateJob(
  store: ObjectStore,
  id: string,
  clock: Clock,
  mutate: (job: JobFile) => JobFile | null,
  maxAttempts = 8,
): Promise<(VersionedJob & { changed: boolean }) | null> {
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const current = await readJobVersioned(store, id);
    if (current === null) return null;
    const next = mutate(structuredClone(current.job));
    if (next === null) return { ...current, changed: false };
    next.updatedAt = iso(clock);
    try {
      const { etag } = await store.put(jobKey(id), encodeJob(next), {
        contentType: 'application/json',
        ...(store.supportsConditionalWrites ? { ifMatch: current.etag } : {}),
      });
      return { job: next, etag, changed: true };
    } catch (e) {
      if (e instanceof PreconditionFailedError) continue;
      throw e;
    }
  }
  throw new Error(`job ${id}: gave up after ${maxAttempts} conflicting concurrent updates`);
}

/**
 * Ask for a job to stop. A queued job is cancelled at once; so is a running one whose lease has expired
 * (no live worker holds it: it died); a running one under a live lease is flagged and its worker stops
 * within one step; a finished job is returned unchanged. Null if the job does not exist.
 */
export async function requestCancel(store: ObjectStore, id: string, clock: Clock): Promise<JobFile | null> {
  const res = await updateJob(store, id, clock, (job) => {
    if (TERMINAL_STATES.includes(job.state)) return null;
    job.cancelRequested = true;
    job.logTail = appendLog(job.logTail, `${iso(clock)} cancel requested`);
    if (job.state === 'queued') job.state = 'cancelled';
    else if (!leaseLive(job, clock.now())) cancelAbandoned(job, clock);
    return job;
  });
  return res?.job ?? null;
}

/** A worker holds the job: it has a lease that has not expired. */
export function leaseLive(job: JobFile, now: number): boolean {
  return job.lease !== undefined && Date.parse(job.lease.expiresAt) > now;
}

/** End a running job that has cancelRequested but no live worker: cancelled, lease removed. */
export function cancelAbandoned(job: JobFile, clock: Clock): void {
  const owner = job.lease?.owner;
  delete job.lease;
  job.state = 'cancelled';
  job.logTail = appendLog(job.logTail, `${iso(clock)} cancelled (no live worker${owner ? `: lease of ${owner} expired` : ''})`);
}
