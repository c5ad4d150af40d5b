import * as tf from '@tensorflow/tfjs';
import { MODEL_JSON, WEIGHTS_BIN } from './manifest.js';

/**
 * tfjs ModelArtifacts ⇄ the two files of the tfjs layers format (model.json + one weights.bin), the
 * format tfjs loads in Node, Workers and browsers.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function artifactsToFiles(artifacts: tf.io.ModelArtifacts): { modelJson: Uint8Array; weightsBin: Uint8Array } {
  if (!artifacts.modelTopology || artifacts.modelTopology instanceof ArrayBuffer)
    throw new Error('only JSON model topologies (tfjs LayersModel) can be saved as a checkpoint');
  const weightsBin = new Uint8Array(
    artifacts.weightData === undefined ? new ArrayBuffer(0) : new tf.io.CompositeArrayBuffer(artifacts.weightData).slice(),
  );
  const json: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology,
    format: artifacts.format ?? 'layers-model',
    generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: artifacts.convertedBy ?? null,
    weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: artifacts.weightSpecs ?? [] }],
  };
  if (artifacts.trainingConfig) json.trainingConfig = artifacts.trainingConfig;
  if (artifacts.userDefinedMetadata) json.userDefinedMetadata = artifacts.userDefinedMetadata;
  return { modelJson: encoder.encode(JSON.stringify(json)), weightsBin };
}

/** Thrown with the name of the file that does not parse as the tfjs format. */
export class ModelFileError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(reason);
    this.name = 'ModelFileError';
  }
}

export function filesToArtifacts(modelJson: Uint8Array, weightsBin: Uint8Array): tf.io.ModelArtifacts {
  let json: tf.io.ModelJSON;
  try {
    json = JSON.parse(decoder.decode(modelJson)) as tf.io.ModelJSON;
  } catch (err) {
    throw new ModelFileError(MODEL_JSON, `is not valid JSON (${(err as Error).message})`);
  }
  if (!json || typeof json !== 'object' || !json.modelTopology || !Array.isArray(json.weightsManifest))
    throw new ModelFileError(MODEL_JSON, 'is not a tfjs layers model (needs modelTopology and weightsManifest)');
  const specs: tf.io.WeightsManifestEntry[] = [];
  for (const group of json.weightsManifest) {
    const paths = group.paths.map((p) => p.replace(/^\.\//, ''));
    if (paths.some((p) => p !== WEIGHTS_BIN))
      throw new ModelFileError(MODEL_JSON, `references weight files ${JSON.stringify(group.paths)}; expected ${WEIGHTS_BIN}`);
    specs.push(...group.weights);
  }
  const expected = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1) * bytesPer(s.quantization?.dtype ?? s.dtype), 0);
  if (expected !== weightsBin.byteLength)
    throw new ModelFileError(WEIGHTS_BIN, `holds ${weightsBin.byteLength} bytes; model.json describes ${expected}`);
  // Copy into a fresh ArrayBuffer: the Uint8Array may be a view into a larger (e.g. Node Buffer pool) one.
  const weightData = weightsBin.slice().buffer;
  const out: tf.io.ModelArtifacts = {
    modelTopology: json.modelTopology,
    weightSpecs: specs,
    weightData,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
  };
  if (json.trainingConfig) out.trainingConfig = json.trainingConfig;
  if (json.userDefinedMetadata) out.userDefinedMetadata = json.userDefinedMetadata;
  return out;
}

function bytesPer(dtype: string): number {
  switch (dtype) {
    case 'float32':
    case 'int32':
      return 4;
    case 'bool':
    case 'uint8':
      return 1;
    case 'float16':
    case 'int16':
    case 'uint16':
      return 2;
    default:
      throw new ModelFileError(MODEL_JSON, `uses unsupported weight dtype ${dtype}`);
  }
}

/** Serialise a LayersModel to its two files (no optimizer state: a checkpoint is for inference). */
export async function modelToFiles(model: tf.LayersModel): Promise<{ modelJson: Uint8Array; weightsBin: Uint8Array }> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!captured) throw new Error('tfjs did not hand over the model artifacts');
  return artifactsToFiles(captured);
}
