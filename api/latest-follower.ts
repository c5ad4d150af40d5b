import type { Logger } from '../shared/log.js';
import { StoreUnavailableError } from '../shared/store/object-store.js';
import type { ApiMetrics } from './metrics.js';
import type { ModelSource } from './model-source.js';
import type { LoadFailure } from './serving-pair.js';

/**
 * What every host tracks about models/latest.json: the version it names, why it could not be read, and
 * the versions that failed to load (skipped until latest names another one), with the metrics and log
 * lines that go with each. The hosts differ in when they look and how they build an index.
 */
export class LatestFollower {
  latest: string | null = null;
  private readError: string | null = null;
  private readonly failed = new Map<string, LoadFailure>();
  /** The last load that failed because the store could not be reached (tried again at the next look). */
  private unreachable: { version: string; error: string } | null = null;

  constructor(private readonly deps: { source: ModelSource; metrics: ApiMetrics; logger: Logger; now: () => number }) {}

  /** Read the pointer; the version to load, or null when it names nothing new (or could not be read). */
  async look(serving: string | null): Promise<string | null> {
    try {
      this.latest = await this.deps.source.readLatest();
      this.readError = null;
    } catch (err) {
      this.readError = (err as Error).message;
      this.deps.logger.warn('could not read latest model pointer', { err: err as Error });
      return null;
    }
    const v = this.latest;
    return v === null || v === serving || this.failed.has(v) ? null : v;
  }

  swapped(version: string, previous: string | null, runtime: string | undefined, fields: Record<string, unknown>): void {
    const { metrics, logger } = this.deps;
    this.unreachable = null;
    metrics.modelSwaps.inc();
    metrics.modelInfo.reset();
    metrics.modelInfo.set({ version, runtime: runtime ?? 'unknown' }, 1);
    logger.info('serving model', { version, previous, runtime, ...fields });
  }

  failedToLoad(version: string, err: unknown): void {
    if (err instanceof StoreUnavailableError) {
      // The store failed, not the version: skipping it would leave this replica on the old model until
      // latest.json moves again. Try it again at the next look.
      this.unreachable = { version, error: err.message };
      this.deps.logger.warn('model version could not be fetched: the store is unreachable; retrying at the next poll', { version, err });
      return;
    }
    this.failed.set(version, { version, error: (err as Error).message, at: new Date(this.deps.now()).toISOString() });
    this.deps.metrics.loadFailures.inc({ version });
    this.deps.logger.error('model version failed to load; skipping it', { version, err: err as Error });
  }

  get failures(): LoadFailure[] {
    return [...this.failed.values()];
  }

  /** Why nothing serves yet, when no version is being built. */
  notReadyReason(): string {
    if (this.readError) return `cannot read models/latest.json: ${this.readError}`;
    if (this.latest === null) return 'no model has been published yet (models/latest.json is missing); train one or wait for the worker';
    const f = this.failed.get(this.latest);
    if (f) return `model ${this.latest} failed to load: ${f.error}`;
    if (this.unreachable?.version === this.latest) return `model ${this.latest} could not be fetched (the store is unreachable; retrying): ${this.unreachable.error}`;
    return 'starting';
  }
}
