import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startLocalS3, type LocalS3, type LocalS3Options } from '../../shared/node/local-s3.js';

/**
 * A real s3rver on loopback for the enclosing describe/file: temp folder, free port, closed and deleted
 * after. Call at describe/file level; read `.current` inside tests.
 *
 *   const s3 = withLocalS3();
 *   it('…', async () => { await s3.current.store.put('k', 'v'); });
 */
export function withLocalS3(opts: Omit<LocalS3Options, 'dir'> = {}): { readonly current: LocalS3 } {
  let server: LocalS3 | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vicreg-s3-'));
    server = await startLocalS3({ ...opts, dir });
  });
  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return {
    get current(): LocalS3 {
      if (!server) throw new Error('withLocalS3: the server starts in beforeAll; use .current inside a test');
      return server;
    },
  };
}

/** Start a standalone local S3 in a fresh temp folder (for tests that stop and restart it). */
export async function startTempS3(opts: Omit<LocalS3Options, 'dir'> = {}): Promise<LocalS3 & { cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'vicreg-s3-'));
  const s = await startLocalS3({ ...opts, dir });
  return {
    ...s,
    async cleanup() {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
