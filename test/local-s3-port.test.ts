import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startLocalS3, storeFromEnv } from '../shared/node/local-s3.js';

describe('local S3 on a port already in use', () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'vicreg-s3-port-'));
    dirs.push(d);
    return d;
  };
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('a second server on the same S3_LOCAL_PORT fails with a message naming S3_LOCAL_PORT and the port (no uncaught EADDRINUSE)', async () => {
    const first = await startLocalS3({ dir: await tempDir() });
    const port = Number(new URL(first.endpoint).port);
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const dir = await tempDir();
      const second = storeFromEnv({ S3_LOCAL_PORT: String(port) }, { localDir: dir });
      // Before the fix the promise never settled (the error escaped as an uncaught exception): the test's
      // own timeout catches that, with no wall-clock bound of ours.
      const outcome = await second.then(
        (s) => ({ ok: true as const, s }),
        (err: Error) => ({ ok: false as const, err }),
      );
      if (outcome.ok === true) await outcome.s.close();
      expect(outcome.ok).toBe(false);
      const err = (outcome as { err: Error }).err;
      expect(err.message).toMatch(/S3_LOCAL_PORT/);
      expect(err.message).toContain(String(port));
      expect(err.message).toContain(dir);
      expect(err.message).not.toMatch(/^\s+at /m);
      expect(uncaught).toEqual([]);
      // The first server is unharmed.
      await first.store.put('still-here', 'yes');
      expect(await first.store.head('still-here')).not.toBeNull();
    } finally {
      process.off('uncaughtException', onUncaught);
      await first.close();
    }
  });
});
