import type { ObjectStore } from '../shared/store/object-store.js';
import { systemClock, type Clock } from '../shared/jobs/clock.js';
import { claimNextJob, LeaseLostError } from '../shared/jobs/lease.js';
import type { WorkerConfig } from './config.js';
import type { Logger } from '../shared/log.js';
import { createStderrLogger } from '../shared/node/stderr-log.js';
import { runJob, type JobOutcome, type RunJobDeps } from './run-job.js';

/**
 * The long-running worker: poll the bucket for a claimable job, run it (train → evaluate → gate →
 * publish), repeat. One job at a time. `stop()` (SIGTERM) makes the running job snapshot its state and
 * release its lease, then resolves; it is bounded by config.shutdownTimeoutMs.
 */
export interface WorkerOptions extends Omit<RunJobDeps, 'stopRequested' | 'clock' | 'log'> {
  store: ObjectStore;
  config: WorkerConfig;
  clock?: Clock;
  logger?: Logger;
  /** Called after each job finishes (tests, the orchestrator). */
  onJobDone?: (o: JobOutcome) => void;
}

export interface RunningWorker {
  /** Ask the worker to stop: the current job snapshots and is released. Resolves when stopped. */
  stop(reason?: string): Promise<void>;
  /** Resolves when the worker has stopped by itself (MAX_JOBS, EXIT_WHEN_IDLE) or after stop(). */
  done: Promise<void>;
}

const sleep = (ms: number, wake: { cancel?: () => void }): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    wake.cancel = () => {
      clearTimeout(t);
      resolve();
    };
  });

export function startWorker(opts: WorkerOptions): RunningWorker {
  const { store, config } = opts;
  const clock = opts.clock ?? systemClock;
  const log = (opts.logger ?? createStderrLogger({ level: config.logLevel })).child({ worker: config.workerId });
  let stopping: string | null = null;
  const wake: { cancel?: () => void } = {};

  log.info('worker.start', {
    store: store.description,
    leaseSeconds: config.leaseMs / 1000,
    snapshotEverySteps: config.snapshotEverySteps,
    gate: config.gate,
  });
  if (!store.supportsConditionalWrites) {
    log.warn('worker.single-worker-only', {
      message:
        `the store (${store.description}) does not enforce conditional writes, so two workers could claim the ` +
        'same job: run a single worker against it (S3, R2 and MinIO enforce them; s3rver does not)',
    });
  }

  const loop = async (): Promise<void> => {
    let jobsDone = 0;
    while (!stopping) {
      let claimed;
      try {
        claimed = await claimNextJob(store, clock, { owner: config.workerId, leaseMs: config.leaseMs }, (e) =>
          log.warn('job.invalid-file', { error: e }),
        );
      } catch (e) {
        log.error('worker.poll-failed', { error: e, retryInMs: config.pollIntervalMs });
        await sleep(config.pollIntervalMs, wake);
        continue;
      }
      if (!claimed) {
        if (config.exitWhenIdle) break;
        await sleep(config.pollIntervalMs, wake);
        continue;
      }
      const jobLog = log.child({ job: claimed.job.id });
      jobLog.info('job.claimed', { attempt: claimed.job.attempts, request: claimed.job.request });
      try {
        const outcome = await runJob(claimed.job, {
          ...opts,
          clock,
          log: jobLog,
          stopRequested: () => stopping,
        });
        jobLog.info('job.done', { ...outcome });
        opts.onJobDone?.(outcome);
      } catch (e) {
        // runJob records failures in the job file itself; reaching here means the store failed too.
        if (e instanceof LeaseLostError) jobLog.warn('job.lease-lost', { error: e });
        else jobLog.error('job.crashed', { error: e });
      }
      jobsDone += 1;
      if (config.maxJobs > 0 && jobsDone >= config.maxJobs) break;
    }
    log.info('worker.stopped', { reason: stopping ?? 'no more work' });
  };

  const done = loop();
  return {
    done,
    async stop(reason = 'stop requested') {
      if (!stopping) {
        stopping = reason;
        log.info('worker.stopping', { reason, timeoutMs: config.shutdownTimeoutMs });
      }
      wake.cancel?.();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          log.error('worker.shutdown-timeout', { timeoutMs: config.shutdownTimeoutMs });
          resolve();
        }, config.shutdownTimeoutMs);
      });
      await Promise.race([done, timeout]);
      clearTimeout(timer);
    },
  };
}
