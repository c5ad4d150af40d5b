import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Every CLI and the worker as a real process: --help exits 0, an unknown flag exits 2 naming the valid ones. */
const ROOT = join(import.meta.dirname, '..');
const run = (entry: string, args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, entry), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });

describe.each([
  ['npm run train', 'gpu-worker/train-cli.ts', /--max-minutes <m>/],
  ['npm run eval', 'gpu-worker/eval-cli.ts', /--split <split>/],
  ['npm run report', 'gpu-worker/report-cli.ts', /--run <dir>/],
  ['npm run worker', 'gpu-worker/main.ts', /LEASE_SECONDS/],
])('%s', (name, entry, helpLine) => {
  it('--help prints usage on stdout and exits 0; an unknown flag exits 2 naming the valid flags', () => {
    const help = run(entry, ['--help']);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(new RegExp(`^usage: ${name}`));
    expect(help.stdout).toMatch(helpLine);
    const bad = run(entry, ['--bogus']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown flag --bogus; valid flags: .*--help/);
  });
});

describe('exit code 1', () => {
  it('a command that fails (no such checkpoint folder or version) exits 1 and says why', () => {
    const r = run('gpu-worker/report-cli.ts', ['--run', join(ROOT, 'no-such-run')]);
    expect(r.status).toBe(2); // bad input to report is usage
    const e = run('gpu-worker/train-cli.ts', ['--dataset', 'gallery', '--out', join(ROOT, '.no-such-out')]);
    expect(e.status).toBe(1);
    expect(e.stderr).toMatch(/npm run train: failed: --dataset gallery reads the API's bucket/);
  });
});
