import * as tf from '@tensorflow/tfjs';
import { VERSION_RE, type Manifest } from '../shared/checkpoint/manifest.js';
import { activateVersion, listVersions, loadCheckpoint, readLatest, readManifest } from '../shared/checkpoint/publish.js';
import { predictLinearVector } from '../shared/eval/linear-head.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { VersionNotFoundError, type ModelSource, type ModelSummary, type ServingModel } from './model-source.js';

/** ModelSource over the checkpoint format in the bucket (shared/checkpoint): load = fetch + sha256 verify. */
export function checkpointSource(store: ObjectStore): ModelSource {
  return {
    async readLatest() {
      return (await readLatest(store))?.version ?? null;
    },
    async load(version) {
      const { manifest, model, linearHead } = await loadCheckpoint(store, version);
      const pre = manifest.preprocessing;
      const [h, w, ch] = [pre.inputSize, pre.inputSize, pre.channels];
      const dimension = manifest.representationDim;
      const forward = async (input: Float32Array, n: number): Promise<Float32Array> => {
        if (input.length !== n * h * w * ch) throw new Error(`forward: ${input.length} values for ${n} images of ${h}×${w}×${ch}`);
        const x = tf.tensor4d(input, [n, h, w, ch]);
        // One call for the whole batch (predict's default would split it into chunks of 32).
        const y = model.predict(x, { batchSize: Math.max(1, n) }) as tf.Tensor;
        try {
          const out = await y.data();
          return out instanceof Float32Array ? out : Float32Array.from(out);
        } finally {
          tf.dispose([x, y]);
        }
      };
      const head = linearHead;
      const served: ServingModel = {
        version,
        preprocessing: { inputSize: pre.inputSize, channels: pre.channels, mean: pre.mean, std: pre.std, resize: pre.resize },
        dimension,
        summary: summarise(manifest),
        forward,
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
        dispose: () => model.dispose(),
      };
      return served;
    },
    async listVersions() {
      return (await listVersions(store)).reverse().map(summarise);
    },
    async activate(version) {
      if (!VERSION_RE.test(version) || !(await readManifest(store, version))) throw new VersionNotFoundError(version);
      await activateVersion(store, version);
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
