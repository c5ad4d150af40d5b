import type { ObjectStore } from '../store/object-store.js';
import { iso, type Clock } from './clock.js';
import { cancelAbandoned, leaseLive, listJobs, updateJob, type VersionedJob } from './jobs.js';
import { appendLog, TERMINAL_STATES, type JobFile, type JobResult } from './schema.js';

/**
 * The claiming protocol. A worker owns a job while `lease.owner` is its id and `lease.expiresAt` is in
 * the future; it renews the lease on every heartbeat. Every write is a compare-and-swap on the job's
 * ETag where the store enforces it, so two workers racing for one job cannot both win: the loser's
 * write fails, it re-reads, sees the other's lease and backs off. On stores without conditional
 * writes (s3rver) only a single worker is safe.
 */

export interface LeaseOwner {
  owner: string;
  leaseMs: number;
}

/** Our lease is gone (expired and taken by another worker, or the job was finished elsewhere). */
export class LeaseLostError extends Error {
  constructor(readonly jobId: string, readonly owner: string, detail: string) {
    super(`job ${jobId}: worker ${owner} no longer holds the lease (${detail}); stopping without publishing`);
    this.name = 'LeaseLostError';
  }
}

const leaseExpired = (job: JobFile, now: number): boolean => !leaseLive(job, now);

/** Queued, or running under a lease that has expired (its worker died): resume from its snapshot. */
export function isClaimable(job: JobFile, now: number): boolean {
  if (job.cancelRequested && job.state === 'queued') return false;
  if (job.state === 'queued') return leaseExpired(job, now);
  return job.state === 'running' && leaseExpired(job, now);
}

/** Try to claim this one job; null if someone else holds it or it is no longer claimable. */
export async function claimJob(
  store: ObjectStore,
  clock: Clock,
  id: string,
  { owner, leaseMs }: LeaseOwner,
): Promise<VersionedJob | null> {
  const res = await updateJob(store, id, clock, (job) => {
    if (!isClaimable(job, clock.now())) return null;
    // Cancelled while its worker was alive, then the worker died before acting on it: end it here.
    if (job.cancelRequested) {
      cancelAbandoned(job, clock);
      return job;
    }
    const resumed = job.state === 'running';
    job.state = 'running';
    job.attempts += 1;
    job.lease = { owner, heartbeatAt: iso(clock), expiresAt: iso(clock, leaseMs) };
    job.logTail = appendLog(
      job.logTail,
      `${iso(clock)} claimed by ${owner} (attempt ${job.attempts}${resumed ? ', previous lease expired' : ''})`,
    );
    return job;
  });
  if (!res || !res.changed || res.job.state !== 'running') return null;
  return { job: res.job, etag: res.etag };
}

/** Claim the oldest claimable job, or null when there is none. */
export async function claimNextJob(
  store: ObjectStore,
  clock: Clock,
  who: LeaseOwner,
  onInvalid?: (err: Error) => void,
): Promise<VersionedJob | null> {
  const now = clock.now();
  const jobs = await listJobs(store, { states: ['queued', 'running'], ...(onInvalid ? { onInvalid } : {}) });
  const candidates = jobs.filter((j) => isClaimable(j, now)).reverse(); // listJobs is newest first
  for (const j of candidates) {
    const claimed = await claimJob(store, clock, j.id, who);
    if (claimed) return claimed;
  }
  return null;
}

/**
 * Renew our lease and apply `patch` (progress, log lines) in the same write. Throws LeaseLostError if
 * the job is no longer ours. Returns the stored job (so the caller sees cancelRequested).
 */
export async function heartbeat(
  store: ObjectStore,
  clock: Clock,
  id: string,
  { owner, leaseMs }: LeaseOwner,
  patch?: (job: JobFile) => void,
): Promise<JobFile> {
  let lost: string | null = null;
  const res = await updateJob(store, id, clock, (job) => {
    if (job.state !== 'running' || job.lease?.owner !== owner) {
      lost = job.state !== 'running' ? `job is ${job.state}` : `lease held by ${job.lease?.owner ?? 'nobody'}`;
      return null;
    }
    job.lease = { owner, heartbeatAt: iso(clock), expiresAt: iso(clock, leaseMs) };
    patch?.(job);
    return job;
  });
  if (res === null) throw new LeaseLostError(id, owner, 'job file deleted');
  if (lost !== null) throw new LeaseLostError(id, owner, lost);
  return res.job;
}

/** Give the job back (e.g. on SIGTERM): queued again, no lease, so any worker resumes it from its snapshot. */
export async function releaseJob(store: ObjectStore, clock: Clock, id: string, owner: string, reason: string): Promise<void> {
  await updateJob(store, id, clock, (job) => {
    if (job.lease?.owner !== owner || TERMINAL_STATES.includes(job.state)) return null;
    delete job.lease;
    job.state = job.cancelRequested ? 'cancelled' : 'queued';
    job.logTail = appendLog(job.logTail, `${iso(clock)} released by ${owner}: ${reason}`);
    return job;
  });
}

export interface Outcome {
  state: 'succeeded' | 'failed' | 'cancelled';
  result?: JobResult;
  metrics?: Record<string, number | null>;
  error?: string;
  log?: string;
}

/** Finish a job we hold. Throws LeaseLostError if another worker took it meanwhile. */
export async function finishJob(
  store: ObjectStore,
  clock: Clock,
  id: string,
  owner: string,
  outcome: Outcome,
): Promise<JobFile> {
  let lost: string | null = null;
  const res = await updateJob(store, id, clock, (job) => {
    if (job.lease?.owner !== owner || job.state !== 'running') {
      lost = job.state !== 'running' ? `job is ${job.state}` : `lease held by ${job.lease?.owner ?? 'nobody'}`;
      return null;
    }
    delete job.lease;
    job.state = outcome.state;
    if (outcome.result) job.result = outcome.result;
    if (outcome.metrics) job.metrics = outcome.metrics;
    if (outcome.error !== undefined) job.error = outcome.error;
    job.logTail = appendLog(job.logTail, `${iso(clock)} ${outcome.state}${outcome.log ? `: ${outcome.log}` : ''}`);
    return job;
  });
  if (res === null) throw new LeaseLostError(id, owner, 'job file deleted');
  if (lost !== null) throw new LeaseLostError(id, owner, lost);
  return res.job;
}
