import * as tf from '@tensorflow/tfjs';
import { checkLabels, featureShape, toTensor2D, topKAccuracy, type LabelledFeatures } from './features.js';

export interface KnnOptions {
  /** Neighbours that vote (the reference uses 20; 200 is also commonly reported). */
  k?: number;
  /** Vote weight = exp(similarity / temperature). */
  temperature?: number;
  /** Defaults to max label + 1 over both splits. */
  numClasses?: number;
  /** Test rows per similarity block. */
  blockSize?: number;
  /** Train rows per similarity block; bounds memory at blockSize × trainBlockSize floats. */
  trainBlockSize?: number;
  /** Also return each test row's class probabilities (normalised votes), n × numClasses. */
  returnScores?: boolean;
}

export interface KnnResult {
  top1: number;
  top5: number;
  predictions: Int32Array;
  k: number;
  temperature: number;
  numClasses: number;
  scores?: Float32Array;
}

/**
 * Weighted kNN classification as in the reference's knn_acc: cosine similarity of L2-normalised features,
 * the k most similar train rows vote for their label with weight exp(sim / T). Runs as blocked matrix
 * products and tf.topk on the compute backend; only per-row rankings come back to JS.
 */
export async function knnEvaluate(train: LabelledFeatures, test: LabelledFeatures, opts: KnnOptions = {}): Promise<KnnResult> {
  const [nTrain, d] = featureShape(train.features);
  const [nTest, dTest] = featureShape(test.features);
  if (d !== dTest) throw new Error(`knn: train features have ${d} dimensions, test features ${dTest}`);
  if (nTrain === 0) throw new Error('knn: the train set is empty');
  const numClasses = opts.numClasses ?? Math.max(maxLabel(train.labels), maxLabel(test.labels)) + 1;
  checkLabels(train.labels, nTrain, numClasses, 'knn train');
  checkLabels(test.labels, nTest, numClasses, 'knn test');
  const k = Math.min(opts.k ?? 20, nTrain);
  const temperature = opts.temperature ?? 0.07;
  if (!(k >= 1)) throw new Error(`knn: k must be ≥ 1, got ${opts.k}`);
  if (!(temperature > 0)) throw new Error(`knn: temperature must be > 0, got ${temperature}`);
  const blockSize = Math.max(1, opts.blockSize ?? 1000);
  const trainBlock = Math.max(k, opts.trainBlockSize ?? 10_000);
  const r = Math.min(5, numClasses);

  const predictions = new Int32Array(nTest);
  const ranking = new Int32Array(nTest * r);
  const scores = opts.returnScores ? new Float32Array(nTest * numClasses) : undefined;

  const trainIn = toTensor2D(train.features);
  const testIn = toTensor2D(test.features);
  // Normalised train chunks, transposed once (d × m) so every block is a plain matmul.
  const trainChunks: tf.Tensor2D[] = [];
  const trainLabels = tf.tensor1d(train.labels, 'int32');
  try {
    for (let s = 0; s < nTrain; s += trainBlock) {
      const m = Math.min(trainBlock, nTrain - s);
      trainChunks.push(tf.tidy(() => l2Normalise(trainIn.tensor.slice([s, 0], [m, d])).transpose()));
    }
    for (let s = 0; s < nTest; s += blockSize) {
      const b = Math.min(blockSize, nTest - s);
      const [rankT, scoreT] = tf.tidy(() => {
        const q = l2Normalise(testIn.tensor.slice([s, 0], [b, d]));
        const { values, indices } = topKAcrossChunks(q, trainChunks, trainBlock, k);
        const votes = vote(values, tf.gather(trainLabels, indices), temperature, numClasses);
        const rk = tf.topk(votes, r).indices;
        return [rk, opts.returnScores ? votes.div(votes.sum(1, true)) : tf.zeros([0])];
      });
      const rk = (await rankT.data()) as Int32Array;
      ranking.set(rk, s * r);
      for (let i = 0; i < b; i++) predictions[s + i] = rk[i * r]!;
      if (scores) scores.set((await scoreT.data()) as Float32Array, s * numClasses);
      rankT.dispose();
      scoreT.dispose();
    }
  } finally {
    for (const t of trainChunks) t.dispose();
    trainLabels.dispose();
    if (trainIn.owned) trainIn.tensor.dispose();
    if (testIn.owned) testIn.tensor.dispose();
  }
  const { top1, top5 } = topKAccuracy(ranking, r, test.labels);
  return { top1, top5, predictions, k, temperature, numClasses, ...(scores ? { scores } : {}) };
}

/** Rows scaled to unit L2 norm (zero rows stay zero, as torch's F.normalize with eps 1e-12). */
export function l2Normalise(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => x.div(x.square().sum(1, true).sqrt().maximum(1e-12)));
}

/** Exact top-k over all train chunks: top-k per chunk, then top-k of the merged candidates. */
function topKAcrossChunks(q: tf.Tensor2D, chunksT: tf.Tensor2D[], chunkSize: number, k: number) {
  const vals: tf.Tensor2D[] = [];
  const idxs: tf.Tensor2D[] = [];
  chunksT.forEach((c, j) => {
    const sims = q.matMul(c);
    const kk = Math.min(k, c.shape[1]);
    const t = tf.topk(sims, kk);
    vals.push(t.values as tf.Tensor2D);
    idxs.push(t.indices.add(tf.scalar(j * chunkSize, 'int32')) as tf.Tensor2D);
  });
  if (vals.length === 1) return { values: vals[0]!, indices: idxs[0]! };
  const allV = tf.concat(vals, 1);
  const allI = tf.concat(idxs, 1);
  const best = tf.topk(allV, k);
  // Row-wise gather as a flat gather: wasm's GatherV2 with batchDims reads out of bounds (tfjs 4.22).
  const [b, w] = allI.shape;
  const rowBase = tf.range(0, b * w, w, 'int32').expandDims(1);
  const flat = tf.gather(allI.reshape([-1]), best.indices.add(rowBase));
  return { values: best.values as tf.Tensor2D, indices: flat as tf.Tensor2D };
}

/** Class votes (b × C): Σ over neighbours of exp((sim − rowmax) / T) — the row-max shift avoids overflow. */
function vote(sims: tf.Tensor2D, labels: tf.Tensor, temperature: number, numClasses: number): tf.Tensor2D {
  const w = sims.sub(sims.max(1, true)).div(temperature).exp();
  const onehot = tf.oneHot(labels as tf.Tensor2D, numClasses); // b × k × C
  return onehot.mul(w.expandDims(2)).sum(1) as tf.Tensor2D;
}

/**
 * Single-query kNN vote for serving: `similarities[i]` is the query's similarity to gallery item i
 * (cosine for the reference protocol), `labels[i]` its class. Returns class probabilities (votes
 * normalised to sum 1). Plain JS: no tensors, works in any runtime.
 */
export function knnVote(
  similarities: ArrayLike<number>,
  labels: ArrayLike<number>,
  k = 20,
  temperature = 0.07,
  numClasses?: number,
): Float64Array {
  const n = similarities.length;
  if (labels.length !== n) throw new Error(`knnVote: ${labels.length} labels for ${n} similarities`);
  let c = numClasses ?? 0;
  if (numClasses === undefined) for (let i = 0; i < n; i++) c = Math.max(c, labels[i]! + 1);
  const probs = new Float64Array(c);
  const kk = Math.min(Math.max(1, Math.floor(k)), n);
  if (n === 0 || c === 0) return probs;
  // Keep the k best in a small sorted buffer (descending): O(n·k) worst case, O(n) typically.
  const topS = new Float64Array(kk).fill(-Infinity);
  const topI = new Int32Array(kk).fill(-1);
  for (let i = 0; i < n; i++) {
    const s = similarities[i]!;
    if (!(s > topS[kk - 1]!) && topI[kk - 1] !== -1) continue;
    let j = kk - 1;
    while (j > 0 && (topI[j - 1] === -1 || s > topS[j - 1]!)) {
      topS[j] = topS[j - 1]!;
      topI[j] = topI[j - 1]!;
      j--;
    }
    topS[j] = s;
    topI[j] = i;
  }
  const max = topS[0]!;
  let total = 0;
  for (let j = 0; j < kk; j++) {
    const y = labels[topI[j]!]!;
    if (y < 0 || y >= c) throw new Error(`knnVote: label ${y} outside [0, ${c})`);
    const w = Math.exp((topS[j]! - max) / temperature);
    probs[y] += w;
    total += w;
  }
  for (let y = 0; y < c; y++) probs[y] = probs[y]! / total;
  return probs;
}

function maxLabel(labels: Int32Array): number {
  let m = -1;
  for (let i = 0; i < labels.length; i++) if (labels[i]! > m) m = labels[i]!;
  return m;
}
