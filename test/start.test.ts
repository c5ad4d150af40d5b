import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { loadFashionMnist } from '../shared/node/datasets.js';

const root = path.resolve(import.meta.dirname, '..');

/**
 * The README's main command on a fresh machine: no configuration, an empty local store. It must come up
 * with the bundled checkpoint published and answer an embedding request with that version.
 */
describe('npm start (embedded default)', () => {
  let dir = '';
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('starts the local store, publishes the bundled checkpoint and serves it', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vicreg-start-'));
    const bundled = JSON.parse(await readFile(path.join(root, 'checkpoints/bundled/manifest.json'), 'utf8')) as { version: string };
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'scripts/start.ts')], {
      cwd: root,
      env: { ...process.env, S3_ENDPOINT: '', S3_LOCAL_DIR: dir, S3_LOCAL_PORT: '0', PORT: '0', START_WORKER: 'false', VICREG_THREADS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line in 90 s:\n${log}`)), 90_000);
      const onData = (b: Buffer) => {
        log += b.toString();
        const m = /"msg":"ready".*?"api":"(http:\/\/[^"]+)"/.exec(log);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => reject(new Error(`exited ${code} before ready:\n${log}`)));
    });
    expect(log).toContain('bundled checkpoint published');

    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(200);

    const test = await loadFashionMnist('test', { limit: 1 });
    const png = await sharp(Buffer.from(test.images), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
    const res = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: new Uint8Array(png) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { model: { version: string }; dimension: number; data: { embedding: number[] }[] };
    expect(body.model.version).toBe(bundled.version);
    expect(body.data[0]!.embedding).toHaveLength(body.dimension);

    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 150_000);
});
