/**
 * tfjs's wasm backend inside workerd. Workers refuse to compile wasm from bytes, which is the only way
 * tfjs loads its binary, so the 'wasm' backend is re-registered with a factory that instantiates the
 * precompiled module the Worker imports (`.wasm` imports arrive as WebAssembly.Module) and builds
 * tfjs's BackendWasm around it. The kernels stay tfjs's own: they are registered by backend name.
 */
import * as tf from '@tensorflow/tfjs';
import { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { BackendWasmModule } from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm.js';
// tfjs's Emscripten loader (CommonJS; non-threaded, serves the plain and the SIMD binary alike).
import emscriptenLoader from '@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm.js';

interface LoaderConfig {
  /** Emscripten calls this instead of fetching and compiling the binary itself. */
  instantiateWasm(imports: WebAssembly.Imports, receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void): WebAssembly.Exports;
}
type CwrapType = 'number' | null;
type LoadedModule = BackendWasmModule & { cwrap(name: string, ret: CwrapType, args: CwrapType[]): (...a: number[]) => number };

// A CommonJS default import is module.exports (the factory) in bundlers; its .d.ts says otherwise.
const createModule = emscriptenLoader as unknown as (config: LoaderConfig) => Promise<LoadedModule>;

/** Same priority as tfjs's own registration, so tf.ready() also prefers it over cpu. */
const WASM_PRIORITY = 2;

let started: Promise<void> | undefined;

/**
 * Makes tfjs's 'wasm' backend, built from `simd` (tfjs-backend-wasm-simd.wasm imported as a module), the
 * active backend. Call once per isolate before any tensor work; later calls await the first one (a
 * different module passed later is ignored). Throws if tfjs did not end up on wasm.
 */
export async function initEdgeWasmBackend(simd: WebAssembly.Module): Promise<void> {
  started ??= start(simd).catch((e: unknown) => {
    started = undefined; // let a later call retry
    throw e;
  });
  await started;
}

async function start(simd: WebAssembly.Module): Promise<void> {
  let failure: unknown;
  if (tf.findBackendFactory('wasm') !== null) tf.removeBackend('wasm');
  tf.registerBackend(
    'wasm',
    async () => {
      try {
        return new BackendWasm(await loadModule(simd));
      } catch (e) {
        failure = e; // tfjs only logs it; keep it for the error below
        throw e;
      }
    },
    WASM_PRIORITY,
  );
  const ok = await tf.setBackend('wasm');
  // After a failed setBackend, getBackend() still says 'wasm' until the next op falls back to cpu,
  // so the returned flag is checked too.
  if (!ok || tf.getBackend() !== 'wasm') {
    const why = failure instanceof Error ? failure.message : failure === undefined ? `backend is '${tf.getBackend()}'` : String(failure);
    // With nodejs_compat the loader takes its Node path (fs, __dirname), which fails in workerd.
    const hint = typeof process === 'object' ? ' (nodejs_compat is on: tfjs\'s wasm loader then takes its Node path)' : '';
    throw new Error(`tfjs wasm backend failed to start in this Worker, tfjs would fall back to cpu: ${why}${hint}`);
  }
}

async function loadModule(simd: WebAssembly.Module): Promise<BackendWasmModule> {
  // An Emscripten abort rejects this promise too, so failures surface here.
  const module = await createModule({
    instantiateWasm(imports, receive) {
      // Instantiating a precompiled module is allowed in Workers; compiling bytes is not.
      const instance = new WebAssembly.Instance(simd, imports);
      receive(instance, simd);
      return instance.exports;
    },
  });
  // Tied to @tensorflow/tfjs-backend-wasm 4.22.0: the bindings its init() adds and BackendWasm calls.
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  return module;
}
