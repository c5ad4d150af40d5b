/**
 * What the API needs from the checkpoint store, as a port: the serving host is written against this,
 * and api/checkpoint-source.ts fills it from shared/checkpoint (load + verify from the bucket).
 */
export interface Preprocessing {
  inputSize: number;
  channels: 1 | 3;
  /** Per channel, of pixel values scaled to [0, 1]. */
  mean: number[];
  std: number[];
  /** How images are brought to inputSize (the manifest says 'fill'). */
  resize?: 'fill' | 'cover';
}

export interface ModelSummary {
  version: string;
  createdAt?: string;
  parent?: string | null;
  metrics?: Record<string, number | null>;
  representationDim?: number;
  preprocessing?: Preprocessing;
  /** Anything else from the manifest worth showing (config, training request…). */
  details?: Record<string, unknown>;
}

export interface LinearPrediction {
  /** Class probabilities, one array per input row. */
  probabilities: Float32Array[];
  classNames: string[];
}

export interface ServingModel {
  readonly version: string;
  readonly preprocessing: Preprocessing;
  /** Embedding (representation) dimension. */
  readonly dimension: number;
  readonly summary: ModelSummary;
  /** n normalised images, concatenated NHWC → n × dimension embeddings, row-major. */
  forward(input: Float32Array, n: number): Promise<Float32Array>;
  /** Where and how the forward pass runs (backend, threads, compiled graph or predict), for logs. */
  readonly runtime?: string;
  /** The checkpoint's linear-probe head on n × dimension features; undefined when it has none. */
  readonly linear?: (features: Float32Array, n: number) => Promise<LinearPrediction>;
  /** Frees the model's tensors. Called once nothing uses it any more. */
  dispose(): void;
}

export interface ModelSource {
  /** The version models/latest.json points at, or null when nothing is published. */
  readLatest(): Promise<string | null>;
  /**
   * Load and verify a version: sha256 of every file, then a probe batch whose outputs must be finite and
   * not collapsed (api/model-sanity.ts); throws with a message naming what is wrong.
   */
  load(version: string): Promise<ServingModel>;
  /** Published versions, newest first. */
  listVersions(): Promise<ModelSummary[]>;
  /**
   * Point latest at this version (promote or roll back). Throws VersionNotFoundError if absent, and
   * refuses a version the publish gate rejected unless `force`. Loading still probes it (see load).
   */
  activate(version: string, opts?: { force?: boolean }): Promise<void>;
}

export class VersionNotFoundError extends Error {
  constructor(readonly version: string) {
    super(`model version ${version} does not exist`);
    this.name = 'VersionNotFoundError';
  }
}
