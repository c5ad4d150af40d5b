import * as tf from '@tensorflow/tfjs';
import { VERSION_RE, type Manifest } from '../shared/checkpoint/manifest.js';
import { openCheckpointFiles, type OpenedCheckpoint } from '../shared/checkpoint/format.js';
import { MANIFEST_JSON, versionPrefix, CheckpointError } from '../shared/checkpoint/manifest.js';
import { activateVersion, listVersions, readLatest, readManifest } from '../shared/checkpoint/publish.js';
import { predictLinearVector } from '../shared/eval/linear-head.js';
import { servingForward } from '../shared/model/serving-graph.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { checkModelSanity } from './model-sanity.js';
import { VersionNotFoundError, type ModelSource, type ModelSummary, type ServingModel } from './model-source.js';

/**
 * A checkpoint that passed verification (sha256 of every file, model shapes, head dimensions). Its
 * `model` is loaded on this thread's backend and owned by the runner (dispose it if not used).
 */
export interface VerifiedCheckpoint extends OpenedCheckpoint {
  /** The verified files by name (model.json, weights.bin, …). */
  files: ReadonlyMap<string, Uint8Array>;
}

/** Runs a verified checkpoint's network: n images NHWC → n × representationDim, row-major. */
export interface NetworkRunner {
  /** May take ownership of `input` (e.g. transfer it to another thread); callers pass a fresh array. */
  forward(input: Float32Array, n: number): Promise<Float32Array>;
  /** Where and how it computes, for logs, e.g. "wasm simd, 1 thread × 2 threads; graph". */
  readonly runtime?: string;
  /** Frees the network once the batches already started have finished. */
  dispose(): void;
}

export type RunNetwork = (checkpoint: VerifiedCheckpoint) => Promise<NetworkRunner>;

/** The network on this thread's tfjs backend (every runtime; the forward pass blocks this thread). */
export const runInThisThread: RunNetwork = async ({ manifest, model }) => {
  const pre = manifest.preprocessing;
  const [h, w, ch] = [pre.inputSize, pre.inputSize, pre.channels];
  const net = servingForward(model, [h, w, ch]);
  return {
    async forward(input, n) {
      if (input.length !== n * h * w * ch) throw new Error(`forward: ${input.length} values for ${n} images of ${h}×${w}×${ch}`);
      const x = tf.tensor4d(input, [n, h, w, ch]);
      const y = net.run(x);
      try {
        const out = await y.data();
        return out instanceof Float32Array ? out : Float32Array.from(out);
      } finally {
        tf.dispose([x, y]);
      }
    },
    runtime: `${tf.getBackend()} on the event loop; ${net.path}`,
    dispose: () => {
      net.dispose();
      model.dispose();
    },
  };
};

/** Fetch a version's files and verify them (shared/checkpoint's rules); the model is loaded on this thread. */
async function fetchVerified(store: ObjectStore, version: string): Promise<VerifiedCheckpoint> {
  const found = await readManifest(store, version);
  if (!found) throw new CheckpointError(MANIFEST_JSON, `is missing: no version ${version} in ${store.description}`, version);
  const prefix = versionPrefix(version);
  const names = Object.keys(found.manifest.files);
  const bodies = await Promise.all(names.map((n) => store.get(`${prefix}${n}`)));
  const files = new Map<string, Uint8Array>([[MANIFEST_JSON, found.bytes]]);
  names.forEach((n, i) => {
    const b = bodies[i];
    if (!b || !('body' in b)) throw new CheckpointError(n, 'is missing', version);
    files.set(n, b.body);
  });
  return { ...(await openCheckpointFiles(files, version)), files };
}

export interface CheckpointSourceOptions {
  /** Where the network runs (default: this thread's tfjs backend). The Node entry passes onnxruntime where it can. */
  run?: RunNetwork;
}

/**
 * ModelSource over the checkpoint format in the bucket (shared/checkpoint): load = fetch + sha256 verify
 * + the sanity probe (api/model-sanity.ts: finite, not collapsed), so both hosts refuse a broken model alike.
 */
export function checkpointSource(store: ObjectStore, opts: CheckpointSourceOptions = {}): ModelSource {
  const run = opts.run ?? runInThisThread;
  return {
    async readLatest() {
      return (await readLatest(store))?.version ?? null;
    },
    async load(version) {
      const verified = await fetchVerified(store, version);
      const { manifest } = verified;
      const head = verified.linearHead;
      const pre = manifest.preprocessing;
      const dimension = manifest.representationDim;
      const runner = await run(verified);
      // Files that match their sha256 can still hold NaN or collapsed weights: probe before serving.
      try {
        await checkModelSanity(version, pre, dimension, (input, n) => runner.forward(input, n));
      } catch (err) {
        runner.dispose();
        throw err;
      }
      const served: ServingModel = {
        version,
        preprocessing: { inputSize: pre.inputSize, channels: pre.channels, mean: pre.mean, std: pre.std, resize: pre.resize },
        dimension,
        summary: summarise(manifest),
        forward: (input, n) => runner.forward(input, n),
        ...(runner.runtime ? { runtime: runner.runtime } : {}),
        ...(head
          ? {
              linear: async (features: Float32Array, n: number) => ({
                probabilities: Array.from({ length: n }, (_, i) =>
                  Float32Array.from(predictLinearVector(head, features.subarray(i * dimension, (i + 1) * dimension))),
                ),
                classNames: head.classNames ?? head.bias.map((_, j) => String(j)),
              }),
            }
          : {}),
        dispose: () => runner.dispose(),
      };
      return served;
    },
    async listVersions() {
      return (await listVersions(store)).reverse().map(summarise);
    },
    async activate(version, opts = {}) {
      if (!VERSION_RE.test(version) || !(await readManifest(store, version))) throw new VersionNotFoundError(version);
      await activateVersion(store, version, { force: opts.force ?? false });
    },
  };
}

function summarise(m: Manifest): ModelSummary {
  return {
    version: m.version,
    createdAt: m.createdAt,
    parent: m.parent,
    metrics: m.metrics,
    representationDim: m.representationDim,
    preprocessing: { inputSize: m.preprocessing.inputSize, channels: m.preprocessing.channels, mean: m.preprocessing.mean, std: m.preprocessing.std, resize: m.preprocessing.resize },
    details: { state: m.state, ...(m.rejectedReason ? { rejectedReason: m.rejectedReason } : {}), backend: m.backend, dataset: m.dataset, training: m.training },
  };
}
