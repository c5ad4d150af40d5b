/** A tiny training job and worker settings for tests that run the real worker process. */
export const WORKER_TEST_ENV = {
  LEASE_SECONDS: '5',
  POLL_INTERVAL_MS: '100',
  PROGRESS_INTERVAL_MS: '300',
  SNAPSHOT_EVERY_STEPS: '2',
  DIAGNOSTICS_EVERY_STEPS: '4',
  EVAL_TRAIN_LIMIT: '256',
  EVAL_TEST_LIMIT: '200',
  PROBE_EPOCHS: '3',
  GATE_MIN_RANK: '1.2',
  GATE_MIN_STD: '0.001',
  SHUTDOWN_TIMEOUT_MS: '8000',
  VICREG_BACKEND: 'wasm',
  VICREG_THREADS: '1',
};

export const TINY_JOB = {
  dataset: { kind: 'fashion-mnist' as const, limit: 256 },
  epochs: 10,
  maxSteps: 14,
  batchSize: 64,
  model: { backbone: { widths: [8, 16], blocks: [1, 1] }, expander: '64-64' },
};
