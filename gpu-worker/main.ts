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

async function main(): Promise<void> {
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
