import type { ObjectStore } from '../store/object-store.js';
import { LATEST_KEY, type LatestPointer } from './manifest.js';
import { parseLatest } from './publish.js';

/** Timer functions, injectable so tests (and Workers' alarms) can drive the watcher. */
export interface WatcherTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface WatchLatestOptions {
  store: ObjectStore;
  /**
   * Called once per newly activated version (a rollback to an earlier version counts as new). If it
   * throws (e.g. the checkpoint fails verification), the error goes to onError and the same pointer is
   * offered again after a back-off, so a transient failure does not strand the caller on the old model.
   */
  onNewVersion: (pointer: LatestPointer) => void | Promise<void>;
  /** Store errors, invalid pointers and handler failures; `retryInMs` is the back-off chosen. */
  onError?: (err: unknown, retryInMs: number) => void;
  /** Poll interval when healthy (default 5000 ms). */
  intervalMs?: number;
  /** Cap for the exponential back-off on consecutive errors (default 60000 ms). */
  maxBackoffMs?: number;
  /** The version the caller already serves; not reported again. */
  initialVersion?: string | null;
  timers?: WatcherTimers;
  key?: string;
}

export interface LatestWatcher {
  /** Stop polling; resolves after an in-flight poll finishes. */
  stop(): Promise<void>;
  /** The last pointer delivered to onNewVersion (or null). */
  readonly current: LatestPointer | null;
  /** Consecutive failures so far (0 when healthy). */
  readonly failures: number;
}

const realTimers: WatcherTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Follow models/latest.json with conditional GETs (If-None-Match on the last ETag): unchanged pointers
 * cost a 304. Polls at once, then every intervalMs; on errors backs off exponentially (interval × 2^n,
 * capped) and keeps going.
 */
export function watchLatest(opts: WatchLatestOptions): LatestWatcher {
  const interval = opts.intervalMs ?? 5000;
  const maxBackoff = opts.maxBackoffMs ?? 60_000;
  const timers = opts.timers ?? realTimers;
  const key = opts.key ?? LATEST_KEY;
  let etag: string | undefined;
  let delivered: string | null = opts.initialVersion ?? null;
  let current: LatestPointer | null = null;
  let failures = 0;
  let stopped = false;
  let handle: unknown;
  let inflight: Promise<void> = Promise.resolve();

  async function poll(): Promise<void> {
    const got = await opts.store.get(key, etag ? { ifNoneMatch: etag } : {});
    if (got === null) {
      etag = undefined; // nothing activated yet
      return;
    }
    if ('notModified' in got) return;
    // Remember the ETag first: an invalid pointer is reported once, not on every poll.
    etag = got.etag;
    const pointer = parseLatest(got.body);
    if (pointer.version === delivered) return;
    try {
      await opts.onNewVersion(pointer);
    } catch (err) {
      etag = undefined; // fetch and offer it again after the back-off
      throw err;
    }
    delivered = pointer.version;
    current = pointer;
  }

  function schedule(ms: number): void {
    if (stopped) return;
    handle = timers.setTimeout(() => {
      inflight = tick();
    }, ms);
  }

  async function tick(): Promise<void> {
    if (stopped) return;
    try {
      await poll();
      failures = 0;
      schedule(interval);
    } catch (err) {
      failures++;
      const wait = Math.min(maxBackoff, interval * 2 ** failures);
      if (!stopped) opts.onError?.(err, wait);
      schedule(wait);
    }
  }

  inflight = tick();
  return {
    async stop() {
      stopped = true;
      timers.clearTimeout(handle);
      await inflight;
    },
    get current() {
      return current;
    },
    get failures() {
      return failures;
    },
  };
}
