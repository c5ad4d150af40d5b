import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { beforeAll, describe, expect, it } from 'vitest';
import { FASHION_MNIST_NORM, type ImageDataset } from '../shared/data/dataset.js';
import { evaluateRepresentation } from '../shared/eval/evaluate.js';
import { rawPixelFeatures } from '../shared/eval/raw-pixels.js';
import { EvalResultSchema, headlineSummary } from '../shared/eval/result-schema.js';
import { loadFashionMnist } from '../shared/node/datasets.js';

let train: ImageDataset;
let test: ImageDataset;

beforeAll(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
  // A tiny real subset: the first 2,000 training and 500 test images.
  train = await loadFashionMnist('train', { limit: 2000 });
  test = await loadFashionMnist('test', { limit: 500 });
});

describe('evaluation on real Fashion-MNIST pixels', () => {
  it('rawPixelFeatures scales to [0, 1], or normalises per channel', () => {
    const raw = rawPixelFeatures(test);
    const norm = rawPixelFeatures(test, FASHION_MNIST_NORM);
    expect(raw.shape).toEqual([500, 784]);
    const [lo, hi, m] = [raw.min().dataSync()[0]!, raw.max().dataSync()[0]!, norm.mean().dataSync()[0]!];
    expect(lo).toBe(0);
    expect(hi).toBe(1);
    expect(Math.abs(m)).toBeLessThan(0.1); // the train-set mean/std roughly centre the test images too
    const px = 3 * 784 + 400;
    expect(raw.dataSync()[px]).toBeCloseTo(test.images[px]! / 255, 6);
    expect(norm.dataSync()[px]).toBeCloseTo((test.images[px]! / 255 - 0.286) / 0.353, 5);
    tf.dispose([raw, norm]);
  });

  it('raw-pixel kNN and linear probe on 2,000 / 500 images score far above chance, as eval.json', async () => {
    const before = tf.memory().numTensors;
    const feats = { train: rawPixelFeatures(train, FASHION_MNIST_NORM), test: rawPixelFeatures(test, FASHION_MNIST_NORM) };
    const pixels = { train: rawPixelFeatures(train), test: rawPixelFeatures(test) };
    const { result, head } = await evaluateRepresentation({
      dataset: 'fashion-mnist (2000/500 subset)',
      checkpoint: 'test',
      numClasses: 10,
      classNames: train.classNames!,
      knnK: [20],
      linear: { epochs: 20 },
      train: { features: feats.train, labels: train.labels! },
      test: { features: feats.test, labels: test.labels! },
      raw: { train: { features: pixels.train, labels: train.labels! }, test: { features: pixels.test, labels: test.labels! } },
    });
    tf.dispose([feats.train, feats.test, pixels.train, pixels.test]);
    expect(tf.memory().numTensors).toBe(before);

    expect(EvalResultSchema.parse(JSON.parse(JSON.stringify(result)))).toEqual(result);
    const s = headlineSummary(result);
    // Known: raw-pixel kNN on the full set is ~85%; 2,000 neighbours still give well over 75%.
    expect(s.raw_knn_top1).toBeGreaterThan(0.75);
    expect(s.raw_linear_top1).toBeGreaterThan(0.72);
    expect(s.knn_top1).toBeGreaterThan(0.72);
    expect(result.raw!.knn[0]!.top5).toBeGreaterThan(0.95);
    // The confusion matrix accounts for every test image, mostly on the diagonal.
    const cm = result.encoder.confusion!.matrix;
    expect(cm.flat().reduce((a, b) => a + b, 0)).toBe(500);
    expect(cm.reduce((a, row, i) => a + row[i]!, 0) / 500).toBeCloseTo(result.encoder.linear!.top1, 10);
    expect(head!.classNames).toEqual(train.classNames);
    expect(result.encoder.stats!.effectiveRank).toBeGreaterThan(10);
    console.log(JSON.stringify(s));
  });
});
