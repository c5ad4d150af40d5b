import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { deflateSync } from 'node:zlib';
import { buildCheckpointFiles } from '../../shared/checkpoint/format.js';
import type { LinearHeadFile, ManifestFields } from '../../shared/checkpoint/manifest.js';
import { publishCheckpoint } from '../../shared/checkpoint/publish.js';
import type { ImageDataset } from '../../shared/data/dataset.js';
import { trainLinearProbe } from '../../shared/eval/linear-probe.js';
import type { ObjectStore } from '../../shared/store/object-store.js';

/**
 * API test fixtures: an untrained but real tfjs backbone published as a real checkpoint, and
 * Fashion-MNIST images as PNG files. A random conv net with a wide output behaves like a random
 * projection of local pixel features, so cosine neighbours share classes well above chance — the
 * assertions hold for a trained model too.
 */
export const DIM = 64;
const MEAN = 0.286;
const STD = 0.353;

export function fixtureBackbone(seed: number): tf.LayersModel {
  const input = tf.input({ shape: [28, 28, 1] });
  let h = tf.layers
    .conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed }) })
    .apply(input) as tf.SymbolicTensor;
  h = tf.layers.averagePooling2d({ poolSize: 2 }).apply(h) as tf.SymbolicTensor;
  h = tf.layers
    .conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.heNormal({ seed: seed + 1 }) })
    .apply(h) as tf.SymbolicTensor;
  h = tf.layers.flatten().apply(h) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: DIM, kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 2 }) }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

function manifestFields(seed: number, parent: string | null): ManifestFields {
  return {
    parent,
    state: 'active-candidate',
    training: { config: { fixture: 'api-tests', seed }, seed, steps: 0, epochs: 0, wallSeconds: 0, command: 'test fixture (untrained)' },
    dataset: { name: 'fashion-mnist:train', fingerprint: 'b'.repeat(64), n: 0 },
    preprocessing: { inputSize: 28, channels: 1, mean: [MEAN], std: [STD], resize: 'fill' },
    representationDim: DIM,
    backend: tf.getBackend(),
    metrics: { knn_top1: 0 },
  };
}

/** Normalised [n,28,28,1] tensor of dataset images (as the manifest's preprocessing says). */
export function normalisedBatch(ds: ImageDataset, start: number, n: number): tf.Tensor4D {
  return tf.tidy(() =>
    tf.tensor4d(ds.images.subarray(start * 784, (start + n) * 784), [n, 28, 28, 1], 'int32').toFloat().div(255).sub(MEAN).div(STD),
  );
}

/** Publish a checkpoint of fixtureBackbone(seed); with `headData`, a linear-probe head trained on its features. */
export async function publishFixture(
  store: ObjectStore,
  opts: { seed: number; activate: boolean; parent?: string | null; headData?: ImageDataset; headN?: number },
): Promise<string> {
  const model = fixtureBackbone(opts.seed);
  try {
    let linearHead: LinearHeadFile | undefined;
    if (opts.headData) {
      const n = opts.headN ?? 2000;
      const x = normalisedBatch(opts.headData, 0, n);
      const f = model.predict(x, { batchSize: 500 }) as tf.Tensor2D;
      linearHead = await trainLinearProbe(f, opts.headData.labels!.subarray(0, n), {
        numClasses: 10,
        classNames: opts.headData.classNames,
        epochs: 30,
        seed: 1,
      });
      tf.dispose([x, f]);
    }
    const { files, manifest } = await buildCheckpointFiles({ model, ...(linearHead ? { linearHead } : {}), manifest: manifestFields(opts.seed, opts.parent ?? null) });
    await publishCheckpoint(store, files, { activate: opts.activate });
    return manifest.version;
  } finally {
    model.dispose();
  }
}

/** Dataset image i as a PNG file (what a client would upload). */
export async function png(ds: ImageDataset, i: number): Promise<Uint8Array<ArrayBuffer>> {
  const buf = await sharp(Buffer.from(ds.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toBuffer();
  return new Uint8Array(buf);
}

export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/** Run f over xs with at most `limit` in flight. */
export async function pool<T, R>(xs: T[], limit: number, f: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(xs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, xs.length) }, async () => {
      while (next < xs.length) {
        const i = next++;
        out[i] = await f(xs[i]!, i);
      }
    }),
  );
  return out;
}

/** A PNG with only a valid signature + IHDR claiming w×h (and a tiny IDAT): what a bomb looks like to a header reader. */
export function bombPng(w: number, h: number): Uint8Array<ArrayBuffer> {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  return new Uint8Array(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1000))), chunk('IEND', Buffer.alloc(0))]));
}

