/**
 * What `@tensorflow/tfjs` is aliased to in the Worker bundle (wrangler "alias"): tfjs-core, tfjs-layers
 * and the cpu backend, without tfjs-converter, tfjs-data and the webgl backend that the full package
 * pulls in and the Worker never uses. Side effects as in @tensorflow/tfjs 4.22.0's index, minus the
 * gradient registrations (the edge only runs inference; add
 * '@tensorflow/tfjs-core/dist/register_all_gradients.js' if it ever trains).
 */
// Tensor methods such as x.reshape() are attached by this import, not by tfjs-core's index.
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
import { version_core } from '@tensorflow/tfjs-core';
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import { version_layers } from '@tensorflow/tfjs-layers';

export * from '@tensorflow/tfjs-core';
export * from '@tensorflow/tfjs-layers';
// Registers the 'cpu' backend (the fallback) as a side effect.
export * from '@tensorflow/tfjs-backend-cpu';

/** Shape of the full package's `tf.version` (shared code reads `tf.version.tfjs`); all pinned alike. */
export const version = {
  'tfjs-core': version_core,
  'tfjs-backend-cpu': version_cpu,
  'tfjs-layers': version_layers,
  tfjs: version_core,
};
