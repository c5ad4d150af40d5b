/**
 * Node entry to backend selection: reads VICREG_BACKEND / VICREG_THREADS, offers the optional native
 * packages and wasm threads, and logs the choice as one JSON line on stderr.
 */
import os from 'node:os';
import { z } from 'zod';
import { initBackend, type BackendInfo, type BackendLoaders, type BackendName } from '../compute/backend.js';
import { prepareWasmThreads } from './wasm-threads.js';

export const BackendEnv = z.object({
  VICREG_BACKEND: z.enum(['auto', 'tensorflow', 'wasm', 'cpu'], {
    error: 'VICREG_BACKEND must be one of auto, tensorflow, wasm, cpu',
  }).default('auto'),
  /** wasm threads; 1 turns the worker-thread pool off (the fallback if threads misbehave). */
  VICREG_THREADS: z.coerce.number({ error: 'VICREG_THREADS must be a number' }).int().min(1).max(64).optional(),
});

export interface NodeBackendOptions {
  /** Overrides VICREG_BACKEND. */
  force?: BackendName | 'auto';
  /** Overrides VICREG_THREADS; default = logical cores. */
  threads?: number;
  env?: Record<string, string | undefined>;
  log?: (message: string) => void;
}

/** Native packages are optionalDependencies: where their install could not download libtensorflow they are absent. */
export const nodeLoaders: BackendLoaders = {
  tensorflow: [
    { name: '@tensorflow/tfjs-node-gpu', load: () => import('@tensorflow/tfjs-node-gpu' as string) },
    { name: '@tensorflow/tfjs-node', load: () => import('@tensorflow/tfjs-node' as string) },
  ],
  wasmThreads: prepareWasmThreads,
};

export async function initNodeBackend(opts: NodeBackendOptions = {}): Promise<BackendInfo> {
  const parsed = BackendEnv.safeParse(opts.env ?? process.env);
  if (!parsed.success) throw new Error(`invalid backend environment: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  const threads = opts.threads ?? parsed.data.VICREG_THREADS ?? Math.max(1, os.availableParallelism());
  return initBackend({
    force: opts.force ?? parsed.data.VICREG_BACKEND,
    threads,
    loaders: nodeLoaders,
    log: opts.log ?? ((m) => process.stderr.write(m + '\n')),
  });
}
