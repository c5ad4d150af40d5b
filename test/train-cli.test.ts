import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { parseProgressLines } from '../shared/eval/progress-schema.js';
import { EvalResultSchema } from '../shared/eval/result-schema.js';
import { modelFromFlags, parseTrainFlags, runTrainCommand } from '../gpu-worker/train-cli.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('npm run train', () => {
  it('parses flags with defaults and names the bad flag', () => {
    const f = parseTrainFlags(['--epochs', '2', '--widths=8,16', '--mu', '0', '--no-raw']);
    expect(f).toMatchObject({ dataset: 'fashion-mnist', epochs: 2, batch: 256, seed: 0, recipe: 'small', mu: 0, nu: 1, raw: false });
    expect(modelFromFlags(f).backbone).toMatchObject({ widths: [8, 16], blocks: [1, 1] });
    expect(() => parseTrainFlags(['--epochs', 'many'])).toThrow(/--epochs/);
    expect(() => parseTrainFlags(['--widths', '8;16'])).toThrow(/--widths must be comma-separated/);
    expect(() => parseTrainFlags(['--epoch', '2'])).toThrow(/Unrecognized key/);
    expect(() => parseTrainFlags(['--dataset', 'folder'])).toThrow(/--data <folder/);
  });

  it('trains a tiny net and writes a verified checkpoint folder, progress.jsonl and eval.json', async () => {
    const out = await mkdtemp(join(tmpdir(), 'vicreg-train-'));
    dirs.push(out);
    const err: string[] = [];
    const flags = parseTrainFlags(
      ('--limit 256 --batch 64 --max-steps 5 --widths 8,16 --expander 64-64 --eval-train-limit 256 ' +
        `--eval-test-limit 200 --probe-epochs 3 --diag-every 5 --backend wasm --threads 1 --out ${out}`).split(' '),
    );
    const summary = await runTrainCommand(flags, { stderr: { write: (s: string) => err.push(s), isTTY: false } });
    expect(summary).toMatchObject({ out, steps: 5, stopped_by: 'completed', dataset: 'fashion-mnist' });
    expect(summary.backend).toMatch(/wasm/);
    expect(summary['knn_top1']).toBeGreaterThan(0.1);
    expect(summary['raw_knn_top1']).toBeGreaterThan(0.1);
    const cp = await loadCheckpointDir(out); // sha256-verified
    expect(cp.manifest.training.steps).toBe(5);
    expect(cp.linearHead).not.toBeNull();
    cp.model.dispose();
    const progress = parseProgressLines(await readFile(join(out, 'progress.jsonl'), 'utf8'));
    expect(progress.errors).toEqual([]);
    expect(progress.events.filter((e) => e.type === 'step')).toHaveLength(5);
    expect(progress.events.map((e) => e.type)).toContain('end');
    const ev = EvalResultSchema.parse(JSON.parse(await readFile(join(out, 'eval.json'), 'utf8')));
    expect(ev.raw?.knn[0]?.top1).toBeGreaterThan(0.1);
    // Not a terminal: progress went to stderr as JSON lines.
    expect(err.some((l) => l.startsWith('{"event":"step"'))).toBe(true);
  });
});
