/** An in-memory image dataset: uint8 pixels, NHWC, row-major; labels optional (unlabelled folders). */
export interface ImageDataset {
  /** n × height × width × channels bytes. */
  images: Uint8Array;
  labels?: Int32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
  classNames?: string[];
  /** Where it came from, e.g. "fashion-mnist:train". */
  source: string;
}

/** The dataset's per-channel mean and std of pixel values scaled to [0, 1]. */
export interface Normalisation {
  mean: number[];
  std: number[];
}

/** Fashion-MNIST training-set statistics (as in the PyTorch reference). */
export const FASHION_MNIST_NORM: Normalisation = { mean: [0.286], std: [0.353] };
