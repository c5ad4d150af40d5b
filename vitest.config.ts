import { defineConfig } from 'vitest/config';

// tfjs-wasm tests are CPU-bound; two forks match the two cores of our machines.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // expect.poll waits on a page or a server doing real work: give a loaded 2-core machine time.
    expect: { poll: { timeout: 15_000 } },
  },
});
