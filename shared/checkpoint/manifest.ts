import { z } from 'zod';
import { LinearHeadSchema, type LinearHead } from '../eval/linear-head.js';

/** File names inside models/<version>/. */
export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
export const LINEAR_HEAD_JSON = 'linear-head.json';
export const MODEL_ONNX = 'model.onnx';
export const MANIFEST_JSON = 'manifest.json';

/**
 * linear-head.json: the linear probe trained on frozen representations. One schema for the whole project;
 * the eval module owns it (it produces and applies heads), the checkpoint format re-exports it.
 */
export const LinearHeadFile = LinearHeadSchema;
export type LinearHeadFile = LinearHead;

/** Sortable, unique version ids: UTC second + 6 random hex, e.g. 20261128T231500Z-a1b2c3. */
export const VERSION_RE = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;
export const VersionId = z.string().regex(VERSION_RE, 'version must look like 20261128T231500Z-a1b2c3');

export function newVersionId(now: Date = new Date()): string {
  const iso = now.toISOString(); // 2026-11-28T23:15:00.123Z
  const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const rnd = crypto.getRandomValues(new Uint8Array(3));
  return `${stamp}-${Array.from(rnd, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits');

export const FileEntry = z.object({ sha256: Sha256Hex, size: z.number().int().nonnegative() });
export type FileEntry = z.infer<typeof FileEntry>;

export const Preprocessing = z
  .object({
    inputSize: z.number().int().positive(),
    channels: z.union([z.literal(1), z.literal(3)]),
    mean: z.array(z.number()).min(1),
    std: z.array(z.number().positive()).min(1),
    /**
     * How images become inputSize × inputSize: 'fill' stretches ignoring aspect ratio (what training on
     * square datasets uses); 'cover' scales and centre-crops (for photos of other shapes).
     */
    resize: z.enum(['fill', 'cover']),
  })
  .refine((p) => p.mean.length === p.channels && p.std.length === p.channels, {
    message: 'preprocessing.mean and .std need one entry per channel',
  });
export type Preprocessing = z.infer<typeof Preprocessing>;

export const TrainingInfo = z.object({
  /** Model config + recipe + hyper-parameters, as the trainer ran them. */
  config: z.record(z.string(), z.unknown()),
  seed: z.number().int(),
  steps: z.number().int().nonnegative(),
  epochs: z.number().nonnegative(),
  wallSeconds: z.number().nonnegative(),
  /** The command that produced this checkpoint, for reproduction. */
  command: z.string(),
});
export type TrainingInfo = z.infer<typeof TrainingInfo>;

export const DatasetInfo = z.object({
  name: z.string().min(1),
  /** sha256 of the pixels and labels (or of the file listing), so "same data" is checkable. */
  fingerprint: Sha256Hex,
  n: z.number().int().nonnegative(),
});
export type DatasetInfo = z.infer<typeof DatasetInfo>;

export const CheckpointState = z.enum(['active-candidate', 'rejected']);
export type CheckpointState = z.infer<typeof CheckpointState>;

export const Manifest = z
  .object({
    schemaVersion: z.literal(1),
    version: VersionId,
    createdAt: z.iso.datetime(),
    parent: VersionId.nullable(),
    /** 'rejected' checkpoints are kept for the record but never activated without force. */
    state: CheckpointState,
    rejectedReason: z.string().min(1).optional(),
    training: TrainingInfo,
    dataset: DatasetInfo,
    preprocessing: Preprocessing,
    representationDim: z.number().int().positive(),
    /** tfjs backend the checkpoint was trained on (tensorflow, wasm, cpu). */
    backend: z.string().min(1),
    /** knn_top1, linear_top1, raw_knn_top1, … */
    metrics: z.record(z.string(), z.number()),
    /** Every other file of the checkpoint; manifest.json covers them and is written last. */
    files: z.record(z.string().regex(/^[A-Za-z0-9._-]+$/, 'file names are plain names'), FileEntry),
  })
  .refine((m) => m.state !== 'rejected' || m.rejectedReason !== undefined, {
    message: 'a rejected checkpoint needs rejectedReason',
    path: ['rejectedReason'],
  })
  .refine((m) => MODEL_JSON in m.files && WEIGHTS_BIN in m.files, {
    message: `files must include ${MODEL_JSON} and ${WEIGHTS_BIN}`,
    path: ['files'],
  });
export type Manifest = z.infer<typeof Manifest>;

/** What the caller supplies; version, createdAt and files are filled in by buildCheckpointFiles. */
export type ManifestFields = Omit<Manifest, 'schemaVersion' | 'files' | 'version' | 'createdAt'> & {
  version?: string;
  createdAt?: string;
};

/** models/latest.json: the pointer the API follows. */
export const LatestPointer = z.object({
  version: VersionId,
  /** ETag of the manifest when the pointer was moved (lets readers detect a rewritten manifest). */
  manifestEtag: z.string().optional(),
  activatedAt: z.iso.datetime(),
});
export type LatestPointer = z.infer<typeof LatestPointer>;

export const MODELS_PREFIX = 'models/';
export const LATEST_KEY = 'models/latest.json';
export const versionPrefix = (version: string): string => `${MODELS_PREFIX}${version}/`;

/** A checkpoint that cannot be used; `file` names the culprit (manifest.json, weights.bin, …). */
export class CheckpointError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
    readonly version?: string,
  ) {
    super(`checkpoint${version ? ` ${version}` : ''}: ${file} ${reason}`);
    this.name = 'CheckpointError';
  }
}

export function zodMessage(err: z.ZodError): string {
  return err.issues.map((i) => (i.path.length ? `${i.path.map(String).join('.')}: ${i.message}` : i.message)).join('; ');
}
