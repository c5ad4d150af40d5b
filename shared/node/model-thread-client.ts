/**
 * Main-thread handle on a model thread (shared/node/model-thread.ts): start it, load verified
 * checkpoint files into it, run batches (inputs are transferred, so the caller's array is emptied),
 * and close it once the batches already sent have finished.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { BackendName } from '../compute/backend.js';
import type { FromModelThread, ModelThreadInit, ToModelThread } from './model-thread-protocol.js';

export interface ModelThreadOptions {
  backend?: BackendName | 'auto';
  /** wasm threads inside the model thread (default 1). */
  threads?: number;
  /** Environment for backend selection (default process.env). */
  env?: Record<string, string | undefined>;
}

export interface ModelThreadFiles {
  modelJson: Uint8Array;
  weightsBin: Uint8Array;
  /** [height, width, channels] of one input image. */
  inputShape: [number, number, number];
  /** Values per output row. */
  dimension: number;
}

export interface ModelThread {
  /** The backend the thread runs, e.g. "wasm simd, 1 thread". */
  readonly backend: string;
  /** How it computes: 'graph' (compiled, checked against predict) or 'predict'. */
  readonly forwardPath: 'graph' | 'predict';
  /** n images NHWC → n × dimension values. Transfers `input`'s buffer to the thread. */
  forward(input: Float32Array, n: number): Promise<Float32Array>;
  /** Batches sent but not answered yet. */
  readonly inFlight: number;
  /** Refuse new batches; end the thread once the in-flight ones are answered. */
  close(): Promise<void>;
}

/** The thread's entry: under tsx (a .ts file) it is loaded through tsx's ESM hooks, registered in the thread. */
function workerFor(init: ModelThreadInit): Worker {
  const here = import.meta.url;
  const entry = new URL(`./model-thread${here.endsWith('.ts') ? '.ts' : '.js'}`, here);
  if (!here.endsWith('.ts')) return new Worker(entry, { workerData: init });
  const tsxApi = createRequire(here).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs');
  const boot = `import { register } from ${JSON.stringify(new URL(`file://${tsxApi}`).href)}; register(); await import(${JSON.stringify(entry.href)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`), { workerData: init });
}

/** Start a thread and load the files into it; rejects with the thread's error if either fails. */
export async function startModelThread(files: ModelThreadFiles, opts: ModelThreadOptions = {}): Promise<ModelThread> {
  const env = Object.fromEntries(Object.entries(opts.env ?? process.env).filter((e): e is [string, string] => e[1] !== undefined));
  const worker = workerFor({ backend: opts.backend ?? 'auto', threads: opts.threads ?? 1, env });
  const pending = new Map<number, { resolve: (o: Float32Array) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let dead: Error | null = null;
  let closing = false;
  let exited!: () => void;
  const exitedP = new Promise<void>((r) => (exited = r));
  let startup: { resolve: (m: FromModelThread) => void; reject: (e: Error) => void } | null = null;
  const next = () => new Promise<FromModelThread>((resolve, reject) => (startup = { resolve, reject }));

  const fail = (err: Error) => {
    dead ??= err;
    startup?.reject(err);
    startup = null;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  worker.on('message', (m: FromModelThread) => {
    if ((m.type === 'result' || m.type === 'error') && m.id !== undefined) {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.type === 'result') p?.resolve(m.output);
      else p?.reject(new Error(m.message));
      // Idle, the thread must not keep the process alive (a model nobody closed would block exit).
      if (pending.size === 0) worker.unref();
      if (closing && pending.size === 0) void worker.terminate();
      return;
    }
    const s = startup;
    startup = null;
    if (m.type === 'error') s?.reject(new Error(m.message));
    else s?.resolve(m);
  });
  worker.on('error', (err) => fail(new Error(`model thread crashed: ${err.message}`)));
  worker.on('exit', (code) => {
    fail(new Error(closing ? 'model thread was closed' : `model thread exited unexpectedly (code ${code})`));
    exited();
  });

  try {
    const ready = await next();
    const backend = ready.type === 'ready' ? ready.backend : 'unknown';
    const loadMsg: ToModelThread = { type: 'load', ...files };
    const loaded = next();
    worker.postMessage(loadMsg);
    const done = await loaded;
    const forwardPath = done.type === 'loaded' ? done.forward : 'predict';
    worker.unref();
    return {
      backend,
      forwardPath,
      get inFlight() {
        return pending.size;
      },
      forward(input, n) {
        if (dead) return Promise.reject(dead);
        if (closing) return Promise.reject(new Error('model thread is closing'));
        const id = nextId++;
        return new Promise<Float32Array>((resolve, reject) => {
          pending.set(id, { resolve, reject });
          worker.ref();
          const msg: ToModelThread = { type: 'forward', id, input, n };
          worker.postMessage(msg, [input.buffer as ArrayBuffer]);
        });
      },
      async close() {
        closing = true;
        if (pending.size === 0) void worker.terminate();
        await exitedP;
      },
    };
  } catch (err) {
    closing = true;
    await worker.terminate();
    throw err;
  }
}
