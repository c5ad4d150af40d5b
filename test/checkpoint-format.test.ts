import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCheckpointFiles, openCheckpointFiles } from '../shared/checkpoint/format.js';
import {
  CheckpointError,
  Manifest,
  newVersionId,
  VERSION_RE,
} from '../shared/checkpoint/manifest.js';
import { sha256Hex } from '../shared/checkpoint/sha256.js';
import { fashionBatch, fields, head, smallBackbone } from './helpers/checkpoint-fixtures.js';
import { loadCheckpointDir, writeCheckpointDir } from '../shared/node/checkpoint-dir.js';

describe('checkpoint format (store-independent)', () => {
  let model: tf.LayersModel;
  let x: tf.Tensor4D;
  let pixels: Uint8Array;
  beforeAll(() => {
    model = smallBackbone();
    ({ x, pixels } = fashionBatch(32));
  });
  afterAll(() => {
    model.dispose();
    x.dispose();
  });

  it('version ids are sortable by time and unique', () => {
    const a = newVersionId(new Date('2026-11-28T23:15:00.999Z'));
    const b = newVersionId(new Date('2026-11-28T23:15:01.000Z'));
    expect(a).toMatch(VERSION_RE);
    expect(a.startsWith('20261128T231500Z-')).toBe(true);
    expect(a < b).toBe(true);
    const many = new Set(Array.from({ length: 200 }, () => newVersionId(new Date(0))));
    expect(many.size).toBeGreaterThan(195); // 24 random bits: collisions in 200 draws are ~0.1% likely
  });

  it('builds files whose manifest covers each one by sha256 and size, and opens them bit-exact', async () => {
    const fingerprint = await sha256Hex(pixels);
    const { files, manifest } = await buildCheckpointFiles({
      model,
      linearHead: head(),
      manifest: fields({ dataset: { name: 'fashion-mnist:test[0:32]', fingerprint, n: 32 } }),
    });
    expect([...files.keys()].sort()).toEqual(['linear-head.json', 'manifest.json', 'model.json', 'weights.bin']);
    for (const name of ['model.json', 'weights.bin', 'linear-head.json']) {
      expect(manifest.files[name]).toEqual({ sha256: await sha256Hex(files.get(name)!), size: files.get(name)!.byteLength });
    }
    expect(Manifest.parse(JSON.parse(new TextDecoder().decode(files.get('manifest.json')!)))).toEqual(manifest);

    const before = tf.memory().numTensors;
    const opened = await openCheckpointFiles(files);
    expect(opened.manifest).toEqual(manifest);
    expect(opened.linearHead).toEqual(head());
    const w0 = model.getWeights();
    const w1 = opened.model.getWeights();
    // tfjs suffixes variable names on reload (kernel → kernel_1), so compare by position and shape.
    expect(w1.map((w) => w.shape)).toEqual(w0.map((w) => w.shape));
    expect(w0).toHaveLength(8);
    for (let i = 0; i < w0.length; i++) expect(Buffer.from(w1[i]!.dataSync().buffer).equals(Buffer.from(w0[i]!.dataSync().buffer))).toBe(true);
    const y0 = model.predict(x) as tf.Tensor;
    const y1 = opened.model.predict(x) as tf.Tensor;
    expect(Array.from(y1.dataSync())).toEqual(Array.from(y0.dataSync()));
    expect(y1.shape).toEqual([32, 16]);
    y0.dispose();
    y1.dispose();
    opened.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  describe('refuses a bad checkpoint, naming the file', () => {
    let good: Map<string, Uint8Array>;
    beforeAll(async () => {
      good = (await buildCheckpointFiles({ model, linearHead: head(), manifest: fields() })).files;
    });
    const refuse = async (files: Map<string, Uint8Array>, file: string, reason: RegExp) => {
      const before = tf.memory().numTensors;
      const err = await openCheckpointFiles(files).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CheckpointError);
      expect((err as CheckpointError).file).toBe(file);
      expect((err as Error).message).toMatch(reason);
      expect((err as Error).message).toContain(file);
      expect(tf.memory().numTensors).toBe(before); // nothing left allocated
    };
    const without = (name: string) => new Map([...good].filter(([k]) => k !== name));
    const replaced = (name: string, f: (b: Uint8Array) => Uint8Array) => new Map([...good].map(([k, v]) => [k, k === name ? f(v) : v]));
    const flipByte = (b: Uint8Array) => {
      const c = b.slice();
      c[Math.floor(c.length / 2)]! ^= 0x01;
      return c;
    };

    for (const name of ['model.json', 'weights.bin', 'linear-head.json', 'manifest.json']) {
      it(`missing ${name}`, () => refuse(without(name), name, /is missing/));
    }
    for (const name of ['model.json', 'weights.bin', 'linear-head.json']) {
      it(`truncated ${name}`, () => refuse(replaced(name, (b) => b.slice(0, b.length - 3)), name, /truncated/));
      it(`one flipped bit in ${name}`, () => refuse(replaced(name, flipByte), name, /corrupt: sha256/));
    }
    it('truncated manifest.json', () => refuse(replaced('manifest.json', (b) => b.slice(0, b.length - 10)), 'manifest.json', /not valid JSON/));
    it('manifest.json with a wrong schemaVersion', () =>
      refuse(
        replaced('manifest.json', (b) => new TextEncoder().encode(JSON.stringify({ ...JSON.parse(new TextDecoder().decode(b)), schemaVersion: 2 }))),
        'manifest.json',
        /schemaVersion/,
      ));
    it('a manifest whose shapes do not match the model', async () => {
      const m = JSON.parse(new TextDecoder().decode(good.get('manifest.json')!)) as Manifest;
      const lying = { ...m, representationDim: 32 };
      await refuse(replaced('manifest.json', () => new TextEncoder().encode(JSON.stringify(lying))), 'linear-head.json', /16-dimensional/);
      const { ['linear-head.json']: _drop, ...rest } = m.files;
      const noHead = new Map(without('linear-head.json'));
      noHead.set('manifest.json', new TextEncoder().encode(JSON.stringify({ ...m, representationDim: 32, files: rest })));
      await refuse(noHead, 'model.json', /output shape \[null,16\].*\[null,32\]/);
      noHead.set('manifest.json', new TextEncoder().encode(JSON.stringify({ ...m, preprocessing: { ...m.preprocessing, inputSize: 32 }, files: rest })));
      await refuse(noHead, 'model.json', /input shape/);
    });
  });

  it('refuses to build a checkpoint that contradicts its model or head', async () => {
    await expect(buildCheckpointFiles({ model, manifest: fields({ representationDim: 8 }) })).rejects.toThrow(/model.json has output shape/);
    await expect(buildCheckpointFiles({ model, linearHead: head(8), manifest: fields() })).rejects.toThrow(/linear-head.json takes 8-dimensional/);
    await expect(
      buildCheckpointFiles({ model, manifest: fields({ state: 'rejected' }) }),
    ).rejects.toThrow(/rejectedReason/);
  });

  it('carries extra files (e.g. model.onnx) under the same sha256 cover', async () => {
    const onnx = new Uint8Array([8, 7, 6, 5]);
    const { files, manifest } = await buildCheckpointFiles({ model, extraFiles: new Map([['model.onnx', onnx]]), manifest: fields() });
    expect(manifest.files['model.onnx']).toEqual({ sha256: await sha256Hex(onnx), size: 4 });
    files.set('model.onnx', new Uint8Array([8, 7, 6, 4]));
    await expect(openCheckpointFiles(files)).rejects.toThrow(/model.onnx is corrupt/);
  });

  it('writes and reads the same files as a folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vicreg-ckpt-'));
    try {
      const { files, manifest } = await buildCheckpointFiles({ model, linearHead: head(), manifest: fields() });
      await writeCheckpointDir(dir, files);
      const opened = await loadCheckpointDir(dir);
      expect(opened.manifest).toEqual(manifest);
      const y0 = model.predict(x) as tf.Tensor;
      const y1 = opened.model.predict(x) as tf.Tensor;
      expect(Array.from(y1.dataSync())).toEqual(Array.from(y0.dataSync()));
      tf.dispose([y0, y1]);
      opened.model.dispose();
      await writeFile(join(dir, 'weights.bin'), files.get('weights.bin')!.slice(0, 10));
      await expect(loadCheckpointDir(dir)).rejects.toThrow(/weights.bin is truncated/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
