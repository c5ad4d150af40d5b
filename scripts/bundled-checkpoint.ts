import { stat } from 'node:fs/promises';
import { activateVersion, publishCheckpoint, readLatest, readManifest } from '../shared/checkpoint/publish.js';
import type { ObjectStore } from '../shared/store/object-store.js';
import { readCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { parseManifest } from '../shared/checkpoint/format.js';
import { MANIFEST_JSON } from '../shared/checkpoint/manifest.js';

export type PublishAction = { action: 'none'; version: string } | { action: 'published' | 'activated'; version: string };

/**
 * First start: the store has no latest.json, so publish the checkpoint bundled in the repo and point
 * latest at it. A store that already follows a model is left alone.
 */
export async function ensureModelPublished(store: ObjectStore, bundledDir: string): Promise<PublishAction> {
  const latest = await readLatest(store);
  if (latest) return { action: 'none', version: latest.version };
  const exists = await stat(bundledDir).then(() => true, () => false);
  if (!exists) throw new Error(`no model in the store and no bundled checkpoint at ${bundledDir}; train one with npm run train`);
  const files = await readCheckpointDir(bundledDir);
  const manifest = parseManifest(files.get(MANIFEST_JSON));
  if (await readManifest(store, manifest.version)) {
    await activateVersion(store, manifest.version);
    return { action: 'activated', version: manifest.version };
  }
  await publishCheckpoint(store, files, { activate: true });
  return { action: 'published', version: manifest.version };
}
