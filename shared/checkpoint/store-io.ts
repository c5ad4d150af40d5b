import * as tf from '@tensorflow/tfjs';
import type { ObjectStore } from '../store/object-store.js';
import { MODEL_JSON, WEIGHTS_BIN } from './manifest.js';
import { artifactsToFiles, filesToArtifacts } from './model-files.js';

function withSlash(prefix: string): string {
  return prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
}

/**
 * A tfjs IOHandler that saves a LayersModel to `<prefix>model.json` + `<prefix>weights.bin` in the store
 * and loads it back: `model.save(storeIOHandler(store, 'scratch/m/'))`,
 * `tf.loadLayersModel(storeIOHandler(store, 'models/<v>/'))`. Weights are written before model.json.
 * This is the raw tfjs format with no verification; serving uses loadCheckpoint (sha256-checked).
 */
export function storeIOHandler(store: ObjectStore, prefix: string): tf.io.IOHandler {
  const p = withSlash(prefix);
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      const { modelJson, weightsBin } = artifactsToFiles(artifacts);
      await store.put(`${p}${WEIGHTS_BIN}`, weightsBin, { contentType: 'application/octet-stream' });
      await store.put(`${p}${MODEL_JSON}`, modelJson, { contentType: 'application/json' });
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          modelTopologyBytes: modelJson.byteLength,
          weightDataBytes: weightsBin.byteLength,
        },
      };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      const [m, w] = await Promise.all([store.get(`${p}${MODEL_JSON}`), store.get(`${p}${WEIGHTS_BIN}`)]);
      if (!m || !('body' in m)) throw new Error(`no ${MODEL_JSON} at ${p} in ${store.description}`);
      if (!w || !('body' in w)) throw new Error(`no ${WEIGHTS_BIN} at ${p} in ${store.description}`);
      return filesToArtifacts(m.body, w.body);
    },
  };
}
