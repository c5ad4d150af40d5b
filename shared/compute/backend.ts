/**
 * Compute backend selection: the fastest backend that loads wins, in the order
 * tensorflow (native, GPU then CPU) → wasm → cpu. Runtime-neutral: whatever needs Node
 * (native packages, wasm threads) arrives through `loaders`.
 */
import * as tf from '@tensorflow/tfjs';
import { registerWasmTrainingKernels } from './wasm-kernels.js';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

export interface BackendInfo {
  name: BackendName;
  /** Human detail, e.g. "tfjs-node-gpu" or "wasm simd, 2 threads". */
  detail: string;
  threads: number;
}

export interface NativeCandidate {
  /** Package name, e.g. "@tensorflow/tfjs-node-gpu"; reported as the detail when it loads. */
  name: string;
  /** Imports the package, which registers tfjs's 'tensorflow' backend. Throws if it cannot load. */
  load: () => Promise<unknown>;
}

export interface BackendLoaders {
  /** Native TensorFlow packages to try, best first. Absent or empty: tensorflow is unavailable here. */
  tensorflow?: NativeCandidate[];
  /**
   * Called just before the wasm backend initialises when more than one thread is wanted; returns `restore`,
   * called right after. Absent: wasm runs single-threaded (e.g. Workers, where wasm threads do not exist).
   */
  wasmThreads?: (threads: number) => { restore: () => void };
}

export interface InitBackendOptions {
  force?: BackendName | 'auto';
  /** wasm threads (default 1). Ignored by the other backends. */
  threads?: number;
  loaders: BackendLoaders;
  log?: (message: string) => void;
}

let current: BackendInfo | undefined;

/** What `initBackend` chose; before any call, a description of tfjs's active backend. */
export function currentBackend(): BackendInfo {
  if (current && tf.getBackend() === current.name) return current;
  const name = tf.getBackend();
  return { name: (BACKEND_NAMES as readonly string[]).includes(name) ? (name as BackendName) : 'cpu', detail: name, threads: 1 };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}

async function loadTensorflow(loaders: BackendLoaders): Promise<BackendInfo> {
  const candidates = loaders.tensorflow ?? [];
  if (candidates.length === 0) throw new Error('no native TensorFlow package is available in this runtime');
  const failures: string[] = [];
  for (const c of candidates) {
    try {
      await c.load();
      if (!(await tf.setBackend('tensorflow'))) throw new Error("tf.setBackend('tensorflow') returned false");
      return { name: 'tensorflow', detail: c.name.replace('@tensorflow/', ''), threads: 0 };
    } catch (e) {
      failures.push(`${c.name}: ${message(e)}`);
    }
  }
  throw new Error(failures.join('; '));
}

async function loadWasm(threads: number, loaders: BackendLoaders, notes: string[]): Promise<BackendInfo> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  let restore: (() => void) | undefined;
  if (tf.findBackend('wasm') === null) {
    // Thread count is fixed when the backend first initialises; later calls just switch to it.
    if (threads > 1 && !loaders.wasmThreads) {
      notes.push(`wasm threads are not supported in this runtime; using 1 instead of ${threads}`);
      threads = 1;
    }
    if (threads > 1) restore = loaders.wasmThreads!(threads).restore;
    wasm.setThreadsCount(threads);
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend('wasm');
  } finally {
    restore?.();
  }
  if (!ok) throw new Error("tf.setBackend('wasm') failed: the .wasm binary did not load (see the warning above)");
  registerWasmTrainingKernels();
  const simd = (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true;
  const actual = wasm.getThreadsCount();
  return { name: 'wasm', detail: `wasm${simd ? ' simd' : ''}, ${actual} thread${actual === 1 ? '' : 's'}`, threads: actual };
}

async function loadCpu(): Promise<BackendInfo> {
  if (!(await tf.setBackend('cpu'))) throw new Error("tf.setBackend('cpu') failed");
  return { name: 'cpu', detail: 'tfjs cpu (pure JS)', threads: 1 };
}

/**
 * Selects and initialises the compute backend. `force` (not 'auto') makes a failure an error naming why;
 * 'auto' falls through tensorflow → wasm → cpu. Logs one JSON line: the choice and what was skipped.
 */
export async function initBackend(opts: InitBackendOptions): Promise<BackendInfo> {
  const log = opts.log ?? (() => {});
  const force = opts.force ?? 'auto';
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`threads must be a positive integer, got ${opts.threads}`);
  const notes: string[] = [];
  const attempt = (name: BackendName): Promise<BackendInfo> =>
    name === 'tensorflow' ? loadTensorflow(opts.loaders) : name === 'wasm' ? loadWasm(threads, opts.loaders, notes) : loadCpu();

  if (force !== 'auto') {
    try {
      current = await attempt(force);
    } catch (e) {
      throw new Error(
        `backend '${force}' was requested but could not be loaded: ${message(e)}. ` +
          `Choose another (auto, tensorflow, wasm, cpu) or fix the cause above.`,
      );
    }
  } else {
    const skipped: string[] = [];
    for (const name of BACKEND_NAMES) {
      try {
        current = await attempt(name);
        break;
      } catch (e) {
        skipped.push(`${name} (${message(e)})`);
      }
    }
    if (!current) throw new Error(`no compute backend could be loaded: ${skipped.join('; ')}`);
    notes.push(...skipped.map((s) => `skipped ${s}`));
  }
  // One line, machine-readable: which backend, and why the better ones were not used.
  log(JSON.stringify({ event: 'backend', ...current, ...(notes.length > 0 ? { notes } : {}) }));
  return current;
}
