import * as tf from '@tensorflow/tfjs';
import {
  CheckpointError,
  LINEAR_HEAD_JSON,
  LinearHeadFile,
  Manifest,
  MANIFEST_JSON,
  MODEL_JSON,
  WEIGHTS_BIN,
  newVersionId,
  zodMessage,
  type FileEntry,
  type ManifestFields,
} from './manifest.js';
import { ModelFileError, filesToArtifacts, modelToFiles } from './model-files.js';
import { sha256Hex } from './sha256.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface BuildCheckpointInput {
  /** The backbone: normalised [null, H, W, C] → representation [null, D]. */
  model: tf.LayersModel;
  linearHead?: LinearHeadFile;
  /** Further files to carry and cover by sha256 (e.g. model.onnx). */
  extraFiles?: ReadonlyMap<string, Uint8Array>;
  manifest: ManifestFields;
}

export interface CheckpointFiles {
  /** Every file including manifest.json, keyed by plain file name. */
  files: Map<string, Uint8Array>;
  manifest: Manifest;
}

/**
 * Serialise a checkpoint: model.json, weights.bin, linear-head.json (optional), extras, and last
 * manifest.json holding the sha256 and size of every other file. Store-independent (WebCrypto only).
 * Throws CheckpointError if the model or head contradicts the manifest fields.
 */
export async function buildCheckpointFiles(input: BuildCheckpointInput): Promise<CheckpointFiles> {
  const { model, linearHead, manifest: fields } = input;
  const version = fields.version ?? newVersionId();
  checkModelShapes(model, fields.preprocessing, fields.representationDim, version);

  const files = new Map<string, Uint8Array>();
  const { modelJson, weightsBin } = await modelToFiles(model);
  files.set(MODEL_JSON, modelJson);
  files.set(WEIGHTS_BIN, weightsBin);
  if (linearHead) {
    const head = LinearHeadFile.safeParse(linearHead);
    if (!head.success) throw new CheckpointError(LINEAR_HEAD_JSON, `is invalid: ${zodMessage(head.error)}`, version);
    checkHeadDim(head.data, fields.representationDim, version);
    files.set(LINEAR_HEAD_JSON, encoder.encode(JSON.stringify(head.data)));
  }
  for (const [name, bytes] of input.extraFiles ?? []) {
    if (files.has(name) || name === MANIFEST_JSON) throw new CheckpointError(name, 'is reserved by the checkpoint format', version);
    files.set(name, bytes);
  }

  const entries: Record<string, FileEntry> = {};
  for (const [name, bytes] of files) entries[name] = { sha256: await sha256Hex(bytes), size: bytes.byteLength };
  const parsed = Manifest.safeParse({
    ...fields,
    schemaVersion: 1,
    version,
    createdAt: fields.createdAt ?? new Date().toISOString(),
    files: entries,
  });
  if (!parsed.success) throw new CheckpointError(MANIFEST_JSON, `would be invalid: ${zodMessage(parsed.error)}`, version);
  files.set(MANIFEST_JSON, encoder.encode(JSON.stringify(parsed.data, null, 2)));
  return { files, manifest: parsed.data };
}

export interface OpenedCheckpoint {
  manifest: Manifest;
  /** The caller owns it: dispose() when replaced. */
  model: tf.LayersModel;
  linearHead: LinearHeadFile | null;
}

/** Parse and validate manifest.json alone (schema and version). */
export function parseManifest(bytes: Uint8Array | undefined | null, expectedVersion?: string): Manifest {
  if (!bytes) throw new CheckpointError(MANIFEST_JSON, 'is missing', expectedVersion);
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch (err) {
    throw new CheckpointError(MANIFEST_JSON, `is not valid JSON (${(err as Error).message})`, expectedVersion);
  }
  const m = Manifest.safeParse(raw);
  if (!m.success) throw new CheckpointError(MANIFEST_JSON, `is invalid: ${zodMessage(m.error)}`, expectedVersion);
  if (expectedVersion !== undefined && m.data.version !== expectedVersion)
    throw new CheckpointError(MANIFEST_JSON, `names version ${m.data.version}, expected ${expectedVersion}`, expectedVersion);
  return m.data;
}

/** Check every file the manifest lists: present, the right size, the right sha256. */
export async function verifyFiles(manifest: Manifest, files: ReadonlyMap<string, Uint8Array>): Promise<void> {
  for (const [name, entry] of Object.entries(manifest.files)) {
    const bytes = files.get(name);
    if (!bytes) throw new CheckpointError(name, 'is missing', manifest.version);
    if (bytes.byteLength !== entry.size)
      throw new CheckpointError(
        name,
        `is ${bytes.byteLength < entry.size ? 'truncated' : 'too long'}: ${bytes.byteLength} bytes, manifest says ${entry.size}`,
        manifest.version,
      );
    const sha = await sha256Hex(bytes);
    if (sha !== entry.sha256)
      throw new CheckpointError(name, `is corrupt: sha256 ${sha} does not match the manifest's ${entry.sha256}`, manifest.version);
  }
}

/**
 * Verify and load a checkpoint from its files: manifest schema, every file's size and sha256, the
 * model's input/output shapes against preprocessing and representationDim, the head's dimensions.
 * Any problem → CheckpointError naming the file; nothing is left allocated on failure.
 */
export async function openCheckpointFiles(
  files: ReadonlyMap<string, Uint8Array>,
  expectedVersion?: string,
): Promise<OpenedCheckpoint> {
  const manifest = parseManifest(files.get(MANIFEST_JSON), expectedVersion);
  await verifyFiles(manifest, files);
  const v = manifest.version;

  let linearHead: LinearHeadFile | null = null;
  if (LINEAR_HEAD_JSON in manifest.files) {
    let raw: unknown;
    try {
      raw = JSON.parse(decoder.decode(files.get(LINEAR_HEAD_JSON)!));
    } catch (err) {
      throw new CheckpointError(LINEAR_HEAD_JSON, `is not valid JSON (${(err as Error).message})`, v);
    }
    const h = LinearHeadFile.safeParse(raw);
    if (!h.success) throw new CheckpointError(LINEAR_HEAD_JSON, `is invalid: ${zodMessage(h.error)}`, v);
    checkHeadDim(h.data, manifest.representationDim, v);
    linearHead = h.data;
  }

  let artifacts: tf.io.ModelArtifacts;
  try {
    artifacts = filesToArtifacts(files.get(MODEL_JSON)!, files.get(WEIGHTS_BIN)!);
  } catch (err) {
    if (err instanceof ModelFileError) throw new CheckpointError(err.file, err.message, v);
    throw err;
  }
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  } catch (err) {
    throw new CheckpointError(MODEL_JSON, `does not load as a tfjs LayersModel (${(err as Error).message})`, v);
  }
  try {
    checkModelShapes(model, manifest.preprocessing, manifest.representationDim, v);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { manifest, model, linearHead };
}

function checkModelShapes(
  model: tf.LayersModel,
  pre: { inputSize: number; channels: number },
  dim: number,
  version: string,
): void {
  if (model.inputs.length !== 1 || model.outputs.length !== 1)
    throw new CheckpointError(MODEL_JSON, `has ${model.inputs.length} inputs and ${model.outputs.length} outputs; expected 1 and 1`, version);
  const inShape = model.inputs[0]!.shape;
  const outShape = model.outputs[0]!.shape;
  const wantIn = [null, pre.inputSize, pre.inputSize, pre.channels];
  if (JSON.stringify(inShape) !== JSON.stringify(wantIn))
    throw new CheckpointError(
      MODEL_JSON,
      `has input shape ${JSON.stringify(inShape)}; the manifest's preprocessing needs ${JSON.stringify(wantIn)}`,
      version,
    );
  if (JSON.stringify(outShape) !== JSON.stringify([null, dim]))
    throw new CheckpointError(
      MODEL_JSON,
      `has output shape ${JSON.stringify(outShape)}; the manifest's representationDim needs [null,${dim}]`,
      version,
    );
}

function checkHeadDim(head: LinearHeadFile, dim: number, version: string): void {
  if (head.mean.length !== dim)
    throw new CheckpointError(LINEAR_HEAD_JSON, `takes ${head.mean.length}-dimensional features; representationDim is ${dim}`, version);
}
