/**
 * `npm run report -- --run <run folder> [--out report.html] [--title "…"]`
 * Turns a run folder's progress.jsonl (and eval.json, when present) into one self-contained HTML page.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import { parseProgressLines } from '../shared/eval/progress-schema.js';
import { renderReport } from '../shared/eval/report.js';
import { EvalResultSchema, type EvalResult } from '../shared/eval/result-schema.js';
import { parseFlags, runCli, UsageError, type FlagTable } from './cli-args.js';

const USAGE = 'usage: npm run report -- --run <run folder with progress.jsonl [and eval.json]> [--out report.html] [--title "…"]';

const REPORT_FLAGS: FlagTable = {
  run: { type: 'string', help: '<dir>  a training run folder (progress.jsonl, and eval.json when present)' },
  out: { type: 'string', help: '<file>  where to write the page (<run>/report.html)' },
  title: { type: 'string', help: '<text>  page title' },
};

const Args = z.object({
  run: z.string({ error: `--run is required.\n${USAGE}` }).min(1, `--run needs a folder.\n${USAGE}`),
  out: z.string().min(1).optional(),
  title: z.string().min(1).optional(),
});

/** Bad usage or input (exit 2). */
class CliError extends UsageError {}

export async function main(argv: string[]): Promise<string> {
  let raw;
  try {
    raw = parseFlags(argv, REPORT_FLAGS, USAGE);
  } catch (e) {
    if (e instanceof UsageError) throw new CliError(`${e.message}\n${USAGE}`);
    throw e;
  }
  const parsed = Args.safeParse(raw);
  if (!parsed.success) throw new CliError(parsed.error.issues.map((i) => i.message).join('\n'));
  const args = parsed.data;
  const dir = resolve(args.run);
  const progressPath = join(dir, 'progress.jsonl');
  if (!existsSync(progressPath)) {
    throw new CliError(`${progressPath} not found: --run must be a training run's folder (the trainer writes progress.jsonl there).`);
  }
  const { events, errors } = parseProgressLines(await readFile(progressPath, 'utf8'));
  const warnings = errors.slice(0, 20).map((e) => `progress.jsonl line ${e.line}: ${e.message}`);
  if (errors.length > 20) warnings.push(`… and ${errors.length - 20} more bad lines in progress.jsonl`);
  if (events.length === 0) throw new CliError(`${progressPath} has no valid progress events${errors[0] ? ` (line ${errors[0].line}: ${errors[0].message})` : ''}.`);

  let evaluation: EvalResult | undefined;
  const evalPath = join(dir, 'eval.json');
  if (existsSync(evalPath)) {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(evalPath, 'utf8'));
    } catch (e) {
      throw new CliError(`${evalPath} is not valid JSON: ${(e as Error).message}`);
    }
    const r = EvalResultSchema.safeParse(json);
    if (!r.success) throw new CliError(`${evalPath} is not an evaluation result:\n${z.prettifyError(r.error)}`);
    evaluation = r.data;
  } else {
    warnings.push(`no eval.json in ${dir}: run the evaluation to add accuracies and the confusion matrix`);
  }

  const out = resolve(args.out ?? join(dir, 'report.html'));
  const html = renderReport({
    title: args.title ?? `VICReg run ${basename(dir)}`,
    progress: events,
    ...(evaluation ? { evaluation } : {}),
    meta: { 'run folder': dir, 'report written': new Date().toISOString() },
    warnings,
  });
  await writeFile(out, html);
  return out;
}

// Run only when executed directly (tests import main).
if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  runCli('npm run report', async () => console.log(`report written to ${await main(process.argv.slice(2))}`));
}
