import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { Gallery } from '../api/gallery.js';
import { readLatest, readManifest } from '../shared/checkpoint/publish.js';
import type { BackendInfo } from '../shared/compute/backend.js';
import { systemClock } from '../shared/jobs/clock.js';
import { createJob, readJob } from '../shared/jobs/jobs.js';
import type { RetrainRequestInput } from '../shared/jobs/schema.js';
import { ModelConfig } from '../shared/model/config.js';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { workerConfigFromEnv } from '../gpu-worker/config.js';
import { loadTrainingData } from '../gpu-worker/data.js';
import { parseTrainFlags, runTrainCommand } from '../gpu-worker/train-cli.js';
import { createJsonLogger } from '../shared/log.js';
import { startWorker } from '../gpu-worker/worker.js';
import { withLocalS3 } from './helpers/s3.js';

/** Retraining on the API's gallery: real Fashion-MNIST PNGs in a real s3rver, a tiny job, a few steps. */
const TINY_MODEL = { backbone: { widths: [8, 16], blocks: [1, 1] }, expander: '64-64' };
const galleryJob = (over: Partial<RetrainRequestInput> = {}): RetrainRequestInput => ({
  dataset: { kind: 'gallery' },
  epochs: 2, // 190 training images at batch 64: 2 steps an epoch
  maxSteps: 3,
  batchSize: 64,
  model: TINY_MODEL,
  ...over,
});
// As in worker-e2e.test.ts: floors the tiny 16-dimensional representation clears when healthy.
const ENV = {
  LEASE_SECONDS: '30',
  POLL_INTERVAL_MS: '50',
  PROGRESS_INTERVAL_MS: '200',
  SNAPSHOT_EVERY_STEPS: '100',
  DIAGNOSTICS_EVERY_STEPS: '3',
  EVAL_TRAIN_LIMIT: '1000',
  EVAL_TEST_LIMIT: '1000',
  PROBE_EPOCHS: '3',
  EXIT_WHEN_IDLE: 'true',
  GATE_MIN_RANK: '1.2',
  GATE_MIN_STD: '0.001',
  GATE_MIN_EMBEDDING_STD: '0.1',
  LOG_LEVEL: 'warn',
};

const LABELLED = 200;
const UNLABELLED = 10;
const CORRUPT_ID = 'zz-corrupt';

let backend: BackendInfo;
beforeAll(async () => {
  backend = await initNodeBackend({ force: 'wasm', threads: 1, log: () => {} });
});

async function runWorker(store: ObjectStore) {
  const lines: string[] = [];
  const w = startWorker({
    store,
    config: workerConfigFromEnv(ENV),
    backend,
    logger: createJsonLogger({ level: 'info', write: (l) => void lines.push(l) }),
  });
  await w.done;
  return lines;
}

/** Store round trips 16 at a time (s3rver answers concurrent requests). */
async function inChunks<T>(xs: T[], f: (x: T, i: number) => Promise<void>): Promise<void> {
  for (let at = 0; at < xs.length; at += 16) await Promise.all(xs.slice(at, at + 16).map((x, k) => f(x, at + k)));
}

/** 200 labelled Fashion-MNIST images as PNGs, 10 unlabelled ones, and one truncated PNG. */
async function fillGallery(store: ObjectStore): Promise<string[]> {
  const fm = await loadFashionMnist('train', { limit: LABELLED + UNLABELLED });
  const gallery = new Gallery(store);
  const png = (i: number) =>
    sharp(Buffer.from(fm.images.subarray(i * 784, (i + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toBuffer();
  const ids = Array.from({ length: fm.n }, (_, i) => (i < LABELLED ? `fm-${String(i).padStart(3, '0')}` : `unlabelled-${i}`));
  await inChunks(ids, async (id, i) => {
    const label = i < LABELLED ? fm.classNames![fm.labels![i]!] : undefined;
    await gallery.put({ id, ...(label ? { label } : {}), contentType: 'image/png', image: new Uint8Array(await png(i)) });
  });
  const good = new Uint8Array(await png(0));
  await gallery.put({ id: CORRUPT_ID, label: 'Coat', contentType: 'image/png', image: good.subarray(0, 40) });
  return ids;
}

describe('retraining on the gallery (loopback S3)', () => {
  const s3 = withLocalS3();

  it('an empty gallery fails the job with a message saying how to fill it', async () => {
    const store = s3.current.store;
    const job = await createJob(store, galleryJob(), systemClock);
    await runWorker(store);
    const done = await readJob(store, job.id);
    expect(done?.state).toBe('failed');
    expect(done?.error).toBe('gallery is empty: add images with POST /v1/images');
    expect(await readLatest(store)).toBeNull();
  });

  it('loads labelled, unlabelled and corrupt items: a seeded 10% labelled hold-out, the corrupt one skipped and named', async () => {
    const store = s3.current.store;
    await fillGallery(store);
    const model = ModelConfig.parse(TINY_MODEL);
    const warnings: string[] = [];
    const limits = { evalTrainLimit: 1000, evalValLimit: 1000, seed: 0, warn: (m: string) => void warnings.push(m) };
    const data = await loadTrainingData({ kind: 'gallery' }, model, limits, { store });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(CORRUPT_ID);
    expect(data.name).toBe('gallery');
    const ev = data.evaluation!;
    expect(ev.classNames).toHaveLength(10);
    expect(ev.val.n).toBe(20); // 10% of the 200 labelled images
    expect(ev.train.n).toBe(180);
    expect(data.train.n).toBe(180 + UNLABELLED); // unlabelled images pretrain, never evaluate
    expect([...ev.val.labels!, ...ev.train.labels!].every((y) => y >= 0 && y < 10)).toBe(true);
    expect(data.norm.mean[0]).toBeGreaterThan(0.1);
    expect(data.norm.mean[0]).toBeLessThan(0.6);
    // limit: at most that many decoded images (in id order, so all labelled here); the hold-out is seeded.
    const few = await loadTrainingData({ kind: 'gallery', limit: 50 }, model, limits, { store });
    expect(few.train.n + few.evaluation!.val.n).toBe(50);
    expect(few.evaluation!.val.n).toBe(5);
    const otherSeed = await loadTrainingData({ kind: 'gallery', limit: 50 }, model, { ...limits, seed: 1 }, { store });
    expect(otherSeed.evaluation!.val.images).not.toEqual(few.evaluation!.val.images);
    // Without a store (the CLI with no bucket) the message says where the gallery lives.
    await expect(loadTrainingData({ kind: 'gallery' }, model, limits)).rejects.toThrow(/reads the API's bucket/);
  });

  it('a gallery job trains, evaluates on the held-out labels, publishes, and names the skipped image', async () => {
    const store = s3.current.store;
    const job = await createJob(store, galleryJob(), systemClock);
    const lines = await runWorker(store);
    const done = await readJob(store, job.id);
    expect(done?.state, done?.error).toBe('succeeded');
    expect(done?.progress).toMatchObject({ step: 3, totalSteps: 3 });
    expect(done?.result).toMatchObject({ published: true, activated: true });
    expect(done?.metrics?.['val_knn_top1']).toBeGreaterThanOrEqual(0);
    expect(done?.metrics?.['val_knn_top1']).toBeLessThanOrEqual(1);
    expect(done?.metrics?.['val_linear_top1']).toBeDefined();
    // The skipped image is named in the worker's log and in the job's log tail (shown by the API).
    expect(lines.some((l) => l.includes('"data.warning"') && l.includes(CORRUPT_ID))).toBe(true);
    expect(done?.logTail.some((l) => l.includes('warning') && l.includes(CORRUPT_ID))).toBe(true);
    const latest = await readLatest(store);
    expect(latest?.version).toBe(done?.result?.version);
    const m = (await readManifest(store, latest!.version))!.manifest;
    expect(m.dataset).toMatchObject({ name: 'gallery', n: 180 + UNLABELLED });
    expect(m.metrics['val_knn_top1']).toBe(done?.metrics?.['val_knn_top1']);
    expect(m.files['linear-head.json']).toBeDefined();
  });

  it('init "latest" warm-starts from the served model and records it as parent; another network fails the job, saying why', async () => {
    const store = s3.current.store;
    const served = (await readLatest(store))!.version;
    // No model given: the warm start's network is used.
    const job = await createJob(store, { dataset: { kind: 'gallery' }, epochs: 2, maxSteps: 2, batchSize: 64, init: 'latest' }, systemClock);
    await runWorker(store);
    const done = await readJob(store, job.id);
    expect(done?.state, done?.error).toBe('succeeded');
    expect(done?.result?.published).toBe(true);
    const m = (await readManifest(store, done!.result!.version))!.manifest;
    expect(m.parent).toBe(served);
    expect(m.training.config).toMatchObject({ init: served, model: ModelConfig.parse(TINY_MODEL) });

    const other = await createJob(store, galleryJob({ init: served, model: { backbone: { widths: [8, 16, 32], blocks: [1, 1, 1] }, expander: '64-64' } }), systemClock);
    await runWorker(store);
    const failed = await readJob(store, other.id);
    expect(failed?.state).toBe('failed');
    expect(failed?.error).toMatch(new RegExp(`init ${served} is a different architecture \\(widths 8,16, .*\\) from the one requested \\(widths 8,16,32, `));
    await expect(createJob(store, galleryJob({ init: 'newest' }), systemClock)).rejects.toThrow(/init: 'latest' or a version/);
  });

  it('npm run train --dataset gallery reads the bucket named by S3_*, and says so when none is set', async () => {
    const stderr = { write: (_: string) => true, isTTY: false };
    const flags = (out: string) =>
      parseTrainFlags(
        `--dataset gallery --batch 64 --max-steps 2 --widths 8,16 --expander 64-64 --no-raw --probe-epochs 3 --backend wasm --threads 1 --quiet --out ${out}`.split(' '),
      );
    await expect(runTrainCommand(flags('/nonexistent'), { stderr, env: {} })).rejects.toThrow(/--dataset gallery reads the API's bucket: set S3_ENDPOINT/);
    const out = await mkdtemp(join(tmpdir(), 'vicreg-gallery-train-'));
    try {
      const summary = await runTrainCommand(flags(out), { stderr, env: s3.current.env });
      expect(summary).toMatchObject({ dataset: 'gallery', steps: 2 });
      expect(summary['val_knn_top1']).toBeGreaterThanOrEqual(0);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('an unlabelled gallery pretrains without evaluation; the gate checks collapse only', async () => {
    const store = s3.current.store;
    const gallery = new Gallery(store);
    await inChunks(await gallery.ids(), async (id) => {
      const item = await gallery.get(id);
      if (item?.label !== undefined && id !== CORRUPT_ID) {
        const img = (await gallery.image(id))!;
        await gallery.put({ id, contentType: img.contentType, image: img.body }); // same image, label dropped
      }
    });
    const job = await createJob(store, galleryJob({ force: false }), systemClock);
    await runWorker(store);
    const done = await readJob(store, job.id);
    expect(done?.state, done?.error).toBe('succeeded');
    expect(done?.metrics?.['val_knn_top1']).toBeUndefined();
    expect(done?.metrics?.['effective_rank']).toBeGreaterThan(1);
    expect(done?.result?.published).toBe(true);
    const m = (await readManifest(store, done!.result!.version))!.manifest;
    expect(m.files['linear-head.json']).toBeUndefined();
  });
});

describe('the held-out split shared with folders', () => {
  it('a labelled folder still holds out a seeded 10% of all images, pretraining on the other 90%', async () => {
    const fm = await loadFashionMnist('train', { limit: 40 });
    const root = await mkdtemp(join(tmpdir(), 'vicreg-folder-'));
    try {
      for (let i = 0; i < fm.n; i++) {
        const dir = join(root, fm.labels![i]! < 5 ? 'a' : 'b');
        await mkdir(dir, { recursive: true });
        const raw = Buffer.from(fm.images.subarray(i * 784, (i + 1) * 784));
        await writeFile(join(dir, `${i}.png`), await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer());
      }
      const limits = { evalTrainLimit: 1000, evalValLimit: 1000, seed: 0 };
      const data = await loadTrainingData({ kind: 'folder', path: root }, ModelConfig.parse(TINY_MODEL), limits);
      expect(data.evaluation?.val.n).toBe(4);
      expect(data.train.n).toBe(36);
      expect(data.evaluation?.train.n).toBe(36);
      expect(data.evaluation?.classNames).toEqual(['a', 'b']);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
