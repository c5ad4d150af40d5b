/**
 * `npm run worker`: the long-running trainer. Settings come from the environment (gpu-worker/config.ts
 * for the worker, S3_* for the bucket, VICREG_BACKEND / VICREG_THREADS for compute). SIGTERM or SIGINT:
 * the running job snapshots its state and releases its lease, then the process exits 0 (bounded by
 * SHUTDOWN_TIMEOUT_MS).
 */
import { initNodeBackend } from '../shared/node/backend-node.js';
import { storeFromEnv } from '../shared/node/local-s3.js';
import { workerConfigFromEnv } from './config.js';
import { createStderrLogger } from '../shared/node/stderr-log.js';
import { startWorker } from './worker.js';
import { HelpRequested, parseFlags, UsageError } from './cli-args.js';

const USAGE = 'usage: npm run worker   (no flags: settings come from the environment)';
const SETTINGS = `Settings (environment; defaults in brackets; see gpu-worker/README.md):
  S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, …  the bucket (none: the embedded local server)
  WORKER_ID [host-pid]  LEASE_SECONDS [60]  POLL_INTERVAL_MS [5000]  PROGRESS_INTERVAL_MS [5000]
  SNAPSHOT_EVERY_STEPS [50]  DIAGNOSTICS_EVERY_STEPS [50]
  GATE_MIN_STD [0.01]  GATE_MIN_RANK [2]  GATE_MIN_EMBEDDING_STD [0.1]  GATE_MARGIN [0.02]
  EVAL_TRAIN_LIMIT [10000] (kNN bank / probe)  EVAL_TEST_LIMIT [10000] (validation images)  PROBE_EPOCHS [20]
  SHUTDOWN_TIMEOUT_MS [20000]  MAX_JOBS [0 = unlimited]  EXIT_WHEN_IDLE [false]  LOG_LEVEL [info]
  VICREG_BACKEND [auto]  VICREG_THREADS
Exit codes: 0 stopped (SIGTERM/SIGINT, MAX_JOBS, EXIT_WHEN_IDLE), 1 crashed, 2 bad flags or settings.`;

async function main(): Promise<void> {
  try {
    parseFlags(process.argv.slice(2), {}, USAGE, SETTINGS);
  } catch (e) {
    if (e instanceof HelpRequested) {
      process.stdout.write(e.message);
      process.exit(0);
    }
    process.stderr.write(`npm run worker: ${(e as Error).message}\n`);
    process.exit(e instanceof UsageError ? 2 : 1);
  }
  const bootLog = createStderrLogger();
  let config;
  try {
    config = workerConfigFromEnv(process.env);
  } catch (e) {
    bootLog.error('worker.config-invalid', { error: e });
    process.exit(2);
  }
  const log = createStderrLogger({ level: config.logLevel });
  const backend = await initNodeBackend({ log: (m) => log.info('backend', JSON.parse(m) as Record<string, unknown>) });
  const { store, close } = await storeFromEnv(process.env);
  const worker = startWorker({ store, config, logger: log, backend });
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (signalled) return;
    signalled = true;
    void worker.stop(sig).then(async () => {
      await close().catch(() => {});
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await worker.done;
  if (!signalled) {
    await close().catch(() => {});
    process.exit(0);
  }
}

main().catch((e: unknown) => {
  createStderrLogger().error('worker.crashed', { error: e });
  process.exit(1);
});
