import * as tf from '@tensorflow/tfjs';
import type { ImageDataset, Normalisation } from '../data/dataset.js';

/**
 * Raw pixels as features (n × h·w·c), the baseline every report shows beside the encoder. Without `norm`
 * pixels are scaled to [0, 1], as the reference's raw-pixel kNN; with it, (x − mean_c) / std_c per channel.
 * (The linear probe standardises per dimension anyway; only kNN's cosine depends on the choice.)
 */
export function rawPixelFeatures(ds: ImageDataset, norm?: Normalisation): tf.Tensor2D {
  const px = ds.height * ds.width * ds.channels;
  if (ds.images.length !== ds.n * px) {
    throw new Error(`rawPixelFeatures: ${ds.source} has ${ds.images.length} bytes, expected ${ds.n}×${ds.height}×${ds.width}×${ds.channels}`);
  }
  if (norm && (norm.mean.length !== ds.channels || norm.std.length !== ds.channels)) {
    throw new Error(`rawPixelFeatures: normalisation has ${norm.mean.length} means for ${ds.channels} channels`);
  }
  return tf.tidy(() => {
    const x = tf.tensor2d(ds.images, [ds.n, px], 'int32').toFloat().div(255);
    if (!norm) return x as tf.Tensor2D;
    // NHWC rows: the channel index cycles fastest, so a per-channel vector tiles across h·w.
    const mean = tf.tile(tf.tensor1d(norm.mean), [ds.height * ds.width]);
    const std = tf.tile(tf.tensor1d(norm.std), [ds.height * ds.width]);
    return x.sub(mean).div(std) as tf.Tensor2D;
  });
}
