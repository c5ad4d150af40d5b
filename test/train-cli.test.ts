import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { MODEL_ONNX } from '../shared/checkpoint/manifest.js';
import { loadCheckpointDir } from '../shared/node/checkpoint-dir.js';
import { loadFashionMnist } from '../shared/node/datasets.js';
import { createOnnxRunner } from '../shared/node/onnx-runtime.js';
import { parseProgressLines } from '../shared/eval/progress-schema.js';
import { EvalResultSchema } from '../shared/eval/result-schema.js';
import { extractFeatures } from '../shared/eval/features.js';
import { knnEvaluate } from '../shared/eval/knn.js';
import { createTrainSession } from '../shared/train/session.js';
import { HelpRequested, UsageError } from '../gpu-worker/cli-args.js';
import { loadTrainingData } from '../gpu-worker/data.js';
import { evalSplits, parseEvalFlags, runEvalCommand } from '../gpu-worker/eval-cli.js';
import { modelFromFlags, parseTrainFlags, runTrainCommand } from '../gpu-worker/train-cli.js';

/** Real Fashion-MNIST (FMNIST_DIR or the Debian package's folder), tiny networks, a few steps. */
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const tmp = async (name: string) => {
  const d = await mkdtemp(join(tmpdir(), `vicreg-${name}-`));
  dirs.push(d);
  return d;
};
const quiet = () => {
  const lines: string[] = [];
  return { lines, stderr: { write: (s: string) => lines.push(s), isTTY: false } };
};
const TINY = '--widths 8,16 --expander 64-64 --backend wasm --threads 1';

describe('npm run train: flags', () => {
  it('parses flags with defaults; unknown flags are named with the valid ones; --help is help', () => {
    const f = parseTrainFlags(['--epochs', '2', '--widths=8,16', '--mu', '0', '--no-raw', '--resume']);
    expect(f).toMatchObject({ dataset: 'fashion-mnist', epochs: 2, batch: 256, seed: 0, recipe: 'small', mu: 0, nu: 1, raw: false, eval: true, resume: true });
    expect(modelFromFlags(f).backbone).toMatchObject({ widths: [8, 16], blocks: [1, 1] });
    expect(() => parseTrainFlags(['--epochs', 'many'])).toThrow(/--epochs/);
    expect(() => parseTrainFlags(['--widths', '8;16'])).toThrow(/--widths must be comma-separated/);
    expect(() => parseTrainFlags(['--epoch', '2'])).toThrow(UsageError);
    expect(() => parseTrainFlags(['--epoch', '2'])).toThrow(/unknown flag --epoch \(did you mean --epochs( or --epoch-knn)?\?\); valid flags: --dataset .*--epochs .*--help/);
    expect(() => parseTrainFlags(['--dataset', 'folder'])).toThrow(/--data <folder/);
    expect(() => parseTrainFlags(['--help'])).toThrow(HelpRequested);
    try {
      parseTrainFlags(['-h']);
    } catch (e) {
      expect((e as Error).message).toMatch(/usage: npm run train[\s\S]*--max-minutes <m>[\s\S]*--resume[\s\S]*--help/);
    }
    expect(() => parseEvalFlags(['--split', 'train'])).toThrow(/--split/);
    // A plain `npm run eval` scores both splits: validation (to choose on) first, then test (to report).
    expect(parseEvalFlags([])).toMatchObject({ dataset: 'fashion-mnist', split: 'both', raw: true, 'probe-epochs': 100 });
    expect(evalSplits(parseEvalFlags([]).split)).toEqual(['validation', 'test']);
    expect(evalSplits(parseEvalFlags(['--split', 'test']).split)).toEqual(['test']);
    expect(() => parseEvalFlags(['--bogus'])).toThrow(/unknown flag --bogus; valid flags: --dataset --split/);
  });
});

describe('npm run train on real images', () => {
  it('trains, evaluates on validation (test only for the final figures) and beats a fresh encoder on validation kNN', async () => {
    const out = await tmp('train');
    const { lines, stderr } = quiet();
    // 2,048 images, 2 epochs of 32 steps at batch 64: enough for VICReg to move off its initialisation.
    const args = `--limit 2048 --batch 64 --epochs 2 ${TINY} --eval-train-limit 2048 --eval-test-limit 500 --probe-epochs 5 --diag-every 16 --epoch-knn 1000 --out ${out}`;
    const summary = await runTrainCommand(parseTrainFlags(args.split(' ')), { stderr, argv: args.split(' ') });
    expect(summary).toMatchObject({ out, steps: 64, stopped_by: 'completed', dataset: 'fashion-mnist' });
    expect(summary.backend).toMatch(/wasm/);
    const cp = await loadCheckpointDir(out); // sha256-verified
    expect(cp.manifest.training.steps).toBe(64);
    expect(cp.manifest.training.command).toBe(`npm run train -- ${args}`);
    expect(cp.manifest.metrics['val_knn_top1']).toBe(summary['val_knn_top1']);
    expect(cp.manifest.metrics['test_knn_top1']).toBe(summary['test_knn_top1']);
    expect(cp.linearHead).not.toBeNull();
    // The freshly trained checkpoint's model.onnx embeds real images as its tfjs model does.
    const images = await loadFashionMnist('test', { limit: 32 });
    const pre = cp.manifest.preprocessing;
    const x = Float32Array.from(images.images, (v) => (v / 255 - pre.mean[0]!) / pre.std[0]!);
    const onnx = await createOnnxRunner(await readFile(join(out, MODEL_ONNX)), { threads: 1 });
    const viaOnnx = await onnx.forward(x, images.n, [28, 28, 1]);
    await onnx.dispose();
    const viaTfjs = tf.tidy(() => (cp.model.predict(tf.tensor4d(x, [images.n, 28, 28, 1])) as tf.Tensor).dataSync());
    expect(Math.max(...viaTfjs.map((v, i) => Math.abs(v - viaOnnx[i]!)))).toBeLessThanOrEqual(1e-4);
    cp.model.dispose();
    // eval.json holds the final figures, on the test split, and says so.
    const ev = EvalResultSchema.parse(JSON.parse(await readFile(join(out, 'eval.json'), 'utf8')));
    expect(ev).toMatchObject({ split: 'test', testCount: 500, trainCount: 2048 });
    expect(ev.raw?.knn[0]?.top1).toBeGreaterThan(0.5);
    const progress = parseProgressLines(await readFile(join(out, 'progress.jsonl'), 'utf8'));
    expect(progress.errors).toEqual([]);
    expect(progress.events.filter((e) => e.type === 'step')).toHaveLength(64);
    expect(progress.events.map((e) => e.type)).toContain('end');
    const epochs = progress.events.filter((e) => e.type === 'epoch');
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2]);
    expect(lines.some((l) => l.startsWith('{"event":"step"'))).toBe(true); // not a terminal: JSON lines

    // The same seed's network before any step, measured the same way on the same validation images.
    const model = modelFromFlags(parseTrainFlags(TINY.split(' ')));
    const data = await loadTrainingData({ kind: 'fashion-mnist', limit: 2048 }, model, { evalTrainLimit: 2048, evalValLimit: 1e9 });
    const fresh = createTrainSession({ model, recipe: 'small', norm: data.norm, ablation: { lambda: 25, mu: 25, nu: 1 }, seed: 0, batchSize: 64, stepsPerEpoch: 32 });
    const feats = async (ds: typeof data.train) => ({ features: await extractFeatures(fresh.representation, ds, data.norm), labels: ds.labels! });
    const freshKnn = (await knnEvaluate(await feats(data.evaluation!.train), await feats(data.evaluation!.val), { k: 20, temperature: 0.07, numClasses: 10 })).top1;
    fresh.dispose();
    expect(data.evaluation!.val.n).toBe(5000);
    console.log(JSON.stringify({ fresh_val_knn_top1: freshKnn, trained_val_knn_top1: summary['val_knn_top1'], test_knn_top1: summary['test_knn_top1'] }));
    expect(summary['val_knn_top1']).toBeGreaterThan(freshKnn + 0.01);

    // A plain npm run eval scores the checkpoint on the same validation split, then the test split, saying which.
    const evalArgs = ['--checkpoint', out, '--train-limit', '2048', '--test-limit', '1000', '--probe-epochs', '3', '--no-raw', '--backend', 'wasm'];
    const { lines: evalLog } = quiet();
    const [val, test] = await runEvalCommand(parseEvalFlags(evalArgs), (l) => void evalLog.push(l));
    expect(val).toMatchObject({ split: 'validation', trainCount: 2048, testCount: 1000, checkpoint: out });
    expect(test).toMatchObject({ split: 'test', trainCount: 2048, testCount: 1000, checkpoint: out });
    expect(val!.encoder.knn.find((k) => k.k === 20)!.top1).toBeGreaterThan(freshKnn - 0.05);
    expect(test!.encoder.knn.find((k) => k.k === 20)!.top1).toBeGreaterThan(0.5);
    expect(val!.raw).toBeUndefined();
  });

  it('--max-minutes stops early and saves state; --resume continues to the same end; the manifest sums time and lists both commands', async () => {
    const out = await tmp('resume');
    const base = `--limit 512 --batch 64 --epochs 2 ${TINY} --eval-train-limit 512 --eval-test-limit 200 --probe-epochs 2 --no-raw --snapshot-every 100 --out ${out}`;
    const first = `${base} --max-minutes 60`.split(' ');
    // The clock jumps past the hour once step 3 is reported: the run stops there, however fast the machine.
    let skipped = 0;
    const lines: string[] = [];
    const stderr = {
      isTTY: false,
      write: (s: string) => {
        lines.push(s);
        const e = s.startsWith('{') ? (JSON.parse(s) as { type?: string; step?: number }) : {};
        if (e.type === 'step' && e.step === 3) skipped = 2 * 3_600_000;
      },
    };
    const a = await runTrainCommand(parseTrainFlags(first), { stderr, argv: first, now: () => Date.now() + skipped });
    expect(a.stopped_by).toBe('maxMinutes');
    expect(a.steps).toBe(3);
    const second = `${base} --resume`.split(' ');
    const b = await runTrainCommand(parseTrainFlags(second), { ...quiet(), argv: second });
    expect(b).toMatchObject({ stopped_by: 'completed', steps: 16, resumed_from_step: a.steps });
    const cp = await loadCheckpointDir(out);
    cp.model.dispose();
    expect(cp.manifest.training.command.split('\n')).toEqual([`npm run train -- ${first.join(' ')}`, `npm run train -- ${second.join(' ')}`]);
    expect(cp.manifest.training.wallSeconds).toBeCloseTo(Number(a['train_seconds']) + Number(b['train_seconds']), 1);
    // Resuming draws what an uninterrupted run draws: the same final loss.
    const whole = await tmp('whole');
    const c = await runTrainCommand(parseTrainFlags(base.replace(out, whole).split(' ')), quiet());
    expect(b.final_loss).toBeCloseTo(c.final_loss!, 3);
    // --resume with nothing to resume from says how to get a snapshot.
    const empty = await tmp('empty');
    await expect(runTrainCommand(parseTrainFlags(`${TINY} --limit 128 --batch 64 --resume --out ${empty}`.split(' ')), quiet())).rejects.toThrow(/no snapshot under .*--snapshot-every/);
  });
});
