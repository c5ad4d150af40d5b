import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openCheckpointFiles, type OpenedCheckpoint } from '../checkpoint/format.js';
import { MANIFEST_JSON } from '../checkpoint/manifest.js';

/**
 * A checkpoint as a folder (what `npm run train` writes and eval reads): the same files as
 * models/<version>/ in the store. manifest.json is written last, via a temp name + rename, so a folder
 * with a manifest is complete.
 */
export async function writeCheckpointDir(dir: string, files: ReadonlyMap<string, Uint8Array>): Promise<void> {
  if (!files.has(MANIFEST_JSON)) throw new Error(`refusing to write a checkpoint without ${MANIFEST_JSON} to ${dir}`);
  await mkdir(dir, { recursive: true });
  for (const [name, bytes] of files) if (name !== MANIFEST_JSON) await writeFile(join(dir, name), bytes);
  const tmp = join(dir, `.${MANIFEST_JSON}.tmp`);
  await writeFile(tmp, files.get(MANIFEST_JSON)!);
  await rename(tmp, join(dir, MANIFEST_JSON));
}

/** Every regular file of the folder (dot-files skipped), keyed by name. */
export async function readCheckpointDir(dir: string): Promise<Map<string, Uint8Array>> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw new Error(`cannot read checkpoint folder ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const files = new Map<string, Uint8Array>();
  for (const e of entries) {
    if (!e.isFile() || e.name.startsWith('.')) continue;
    const buf = await readFile(join(dir, e.name));
    files.set(e.name, new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  }
  return files;
}

/** Read and fully verify a checkpoint folder (see openCheckpointFiles). */
export async function loadCheckpointDir(dir: string): Promise<OpenedCheckpoint> {
  return openCheckpointFiles(await readCheckpointDir(dir));
}
