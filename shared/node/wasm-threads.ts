/**
 * Multi-threaded tfjs-backend-wasm in Node.
 *
 * tfjs turns wasm threads off in Node because it hands the pthread worker script to worker_threads as a
 * `blob:` URL, which Node refuses. We write that script to a real file, point the URL for that one blob at
 * it, and set WASM_HAS_MULTITHREAD_SUPPORT. Inside each pthread worker the main Emscripten script arrives
 * as a Blob too, so the worker file starts with a shim that resolves it to the package's own copy on disk.
 * The C++ side sizes its pool as min(requested, logical cores / 2), so `os.cpus()` reads doubled while the
 * backend initialises (restored right after).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';

const require = createRequire(import.meta.url);

let prepared: { workerFile: string } | undefined;

/** The worker script exactly as tfjs would put it in its Blob (newlines inside string literals escaped). */
function workerScript(): string {
  const mod = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as {
    wasmWorkerContents: string;
  };
  return mod.wasmWorkerContents.replace(/\n/g, '\\n');
}

/**
 * Makes the next `tf.setBackend('wasm')` start `threads` XNNPACK threads. Call before the wasm backend
 * initialises; returns `restore` to call once it has (undoes the doubled core count).
 */
export function prepareWasmThreads(threads: number): { restore: () => void } {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`wasm threads must be a positive integer, got ${threads}`);
  if (!prepared) {
    const mainScript = require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
    const escaped = workerScript();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vicreg-wasm-'));
    const workerFile = path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.cjs');
    // Inside the worker: the Blob holding the Emscripten main script becomes the package's file on disk.
    const shim = `URL.createObjectURL=function(){return ${JSON.stringify(mainScript)}};URL.revokeObjectURL=function(){};\n`;
    fs.writeFileSync(workerFile, shim + escaped);
    // The file is only read when a worker starts; remove the folder when the process ends.
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

    const workerBytes = Buffer.byteLength(escaped);
    const original = URL.createObjectURL.bind(URL);
    // Only the pthread worker Blob is redirected (same type and size as tfjs's); everything else is untouched.
    URL.createObjectURL = (obj: Blob | MediaSource): string => {
      if (obj instanceof Blob && obj.type === 'application/javascript' && obj.size === workerBytes) return workerFile;
      return original(obj);
    };
    prepared = { workerFile };
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', threads > 1);

  const realCpus = os.cpus;
  if (threads > 1) {
    os.cpus = () => {
      const c = realCpus();
      const want = Math.max(c.length * 2, threads * 2);
      return Array.from({ length: want }, (_, i) => c[i % c.length]!);
    };
  }
  return {
    restore: () => {
      os.cpus = realCpus;
      // Emscripten ref()s a worker while its pthread runs; XNNPACK's pool threads never end, so without
      // this the process could not exit.
      const backend = tf.findBackend('wasm') as unknown as { wasm?: { PThread?: { runningWorkers?: { unref(): void }[] } } } | null;
      for (const w of backend?.wasm?.PThread?.runningWorkers ?? []) w.unref();
    },
  };
}
