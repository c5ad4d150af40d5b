/**
 * Backend selection: order, forcing, errors that say why, the one-line JSON log, env validation.
 * The native packages are absent on this machine, which is exactly the fallback case to check.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { currentBackend, initBackend } from '../shared/compute/backend.js';
import { initNodeBackend, nodeLoaders } from '../shared/node/backend-node.js';

describe('backend selection', () => {
  it('auto falls through a failing native package to wasm, and logs one JSON line saying why', async () => {
    const lines: string[] = [];
    const info = await initBackend({
      force: 'auto',
      threads: 1,
      loaders: { tensorflow: [{ name: '@tensorflow/tfjs-node', load: () => Promise.reject(new Error('libtensorflow.so: cannot open')) }] },
      log: (m) => lines.push(m),
    });
    expect(info.name).toBe('wasm');
    expect(info.detail).toMatch(/^wasm/);
    expect(tf.getBackend()).toBe('wasm');
    expect(currentBackend()).toEqual(info);
    expect(lines).toHaveLength(1);
    const logged = JSON.parse(lines[0]!);
    expect(logged).toMatchObject({ event: 'backend', name: 'wasm' });
    expect(logged.notes.join(' ')).toContain('libtensorflow.so: cannot open');
  });

  it('a forced backend that cannot load is an error naming the cause', async () => {
    await expect(initNodeBackend({ env: { VICREG_BACKEND: 'tensorflow' }, log: () => {} })).rejects.toThrow(
      /backend 'tensorflow' was requested but could not be loaded: .*@tensorflow\/tfjs-node-gpu.*@tensorflow\/tfjs-node/,
    );
    await expect(initBackend({ force: 'tensorflow', loaders: {}, log: () => {} })).rejects.toThrow(/no native TensorFlow package/);
  });

  it('VICREG_BACKEND forces cpu; bad values are rejected with the allowed list', async () => {
    const info = await initNodeBackend({ env: { VICREG_BACKEND: 'cpu' }, log: () => {} });
    expect(info.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    await expect(initNodeBackend({ env: { VICREG_BACKEND: 'gpu' } })).rejects.toThrow(/auto, tensorflow, wasm, cpu/);
    await expect(initNodeBackend({ env: { VICREG_THREADS: 'two' } })).rejects.toThrow(/VICREG_THREADS/);
  });

  it('the Node loaders list tfjs-node-gpu before tfjs-node', () => {
    expect(nodeLoaders.tensorflow!.map((c) => c.name)).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
  });
});
