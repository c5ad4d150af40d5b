import os from 'node:os';
import { z } from 'zod';

/** Worker settings from the environment (zod-validated; every problem is named by its variable). */
const int = (name: string, min: number, max: number) =>
  z.coerce
    .number({ error: `${name} must be a number` })
    .int(`${name} must be a whole number`)
    .min(min, `${name} must be ≥ ${min}`)
    .max(max, `${name} must be ≤ ${max}`);
const num = (name: string, min: number, max: number) =>
  z.coerce
    .number({ error: `${name} must be a number` })
    .min(min, `${name} must be ≥ ${min}`)
    .max(max, `${name} must be ≤ ${max}`);

export const WorkerEnv = z
  .object({
    WORKER_ID: z.string().regex(/^[A-Za-z0-9._:-]{1,100}$/, 'WORKER_ID: 1–100 of A–Z a–z 0–9 . _ : -').optional(),
    /** A lease not renewed for this long is considered dead and the job may be taken over. */
    LEASE_SECONDS: int('LEASE_SECONDS', 5, 3600).default(60),
    /** Pause between looks for queued jobs when idle. */
    POLL_INTERVAL_MS: int('POLL_INTERVAL_MS', 50, 600_000).default(5000),
    /** Progress + lease renewal is written at most this often (and always at least every lease/3). */
    PROGRESS_INTERVAL_MS: int('PROGRESS_INTERVAL_MS', 100, 600_000).default(5000),
    /** Training state is saved to the bucket every N steps: kill -9 loses at most this much work. */
    SNAPSHOT_EVERY_STEPS: int('SNAPSHOT_EVERY_STEPS', 1, 1_000_000).default(50),
    /** Representation std / effective rank measured every N steps. */
    DIAGNOSTICS_EVERY_STEPS: int('DIAGNOSTICS_EVERY_STEPS', 1, 1_000_000).default(50),
    /** Gate: minimum mean per-dimension std of the L2-normalised representation. */
    GATE_MIN_STD: num('GATE_MIN_STD', 0, 10).default(0.01),
    /** Gate: minimum effective rank (RankMe) of the representation. */
    GATE_MIN_RANK: num('GATE_MIN_RANK', 0, 1e6).default(2),
    /** Gate: minimum mean per-dimension std of the embeddings in the last training batch (target γ = 1). */
    GATE_MIN_EMBEDDING_STD: num('GATE_MIN_EMBEDDING_STD', 0, 10).default(0.1),
    /** Gate: how much lower (absolute accuracy, 0–1) than the current model a new one may score. */
    GATE_MARGIN: num('GATE_MARGIN', 0, 1).default(0.02),
    /** Evaluation size: labelled train images for the kNN bank / probe, and held-out test images. */
    EVAL_TRAIN_LIMIT: int('EVAL_TRAIN_LIMIT', 10, 10_000_000).default(10_000),
    EVAL_TEST_LIMIT: int('EVAL_TEST_LIMIT', 10, 10_000_000).default(10_000),
    /** Linear-probe epochs at publish time. */
    PROBE_EPOCHS: int('PROBE_EPOCHS', 1, 1000).default(20),
    /** On SIGTERM the worker exits within this bound even if the store is slow. */
    SHUTDOWN_TIMEOUT_MS: int('SHUTDOWN_TIMEOUT_MS', 100, 600_000).default(20_000),
    /** Stop after this many jobs (0 = run for ever); for tests and one-shot batch use. */
    MAX_JOBS: int('MAX_JOBS', 0, 1_000_000).default(0),
    /** Exit when no job is queued instead of polling (one-shot batch use). */
    EXIT_WHEN_IDLE: z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1').default(false),
    LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  })
  .transform((e) => ({
    workerId: e.WORKER_ID ?? `${os.hostname()}-${process.pid}`,
    leaseMs: e.LEASE_SECONDS * 1000,
    pollIntervalMs: e.POLL_INTERVAL_MS,
    progressIntervalMs: Math.min(e.PROGRESS_INTERVAL_MS, Math.floor((e.LEASE_SECONDS * 1000) / 3)),
    snapshotEverySteps: e.SNAPSHOT_EVERY_STEPS,
    diagnosticsEverySteps: e.DIAGNOSTICS_EVERY_STEPS,
    gate: { minStd: e.GATE_MIN_STD, minRank: e.GATE_MIN_RANK, minEmbeddingStd: e.GATE_MIN_EMBEDDING_STD, margin: e.GATE_MARGIN },
    eval: { trainLimit: e.EVAL_TRAIN_LIMIT, testLimit: e.EVAL_TEST_LIMIT, probeEpochs: e.PROBE_EPOCHS },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    maxJobs: e.MAX_JOBS,
    exitWhenIdle: e.EXIT_WHEN_IDLE,
    logLevel: e.LOG_LEVEL,
  }));
export type WorkerConfig = z.output<typeof WorkerEnv>;

export function workerConfigFromEnv(env: Record<string, string | undefined>): WorkerConfig {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') cleaned[k] = v;
  const r = WorkerEnv.safeParse(cleaned);
  if (!r.success) throw new Error(`invalid worker settings: ${r.error.issues.map((i) => i.message).join('; ')}`);
  return r.data;
}
