/**
 * The one flag parser of the CLIs (`train`, `eval`, `report`) and the worker: node:util parseArgs with a
 * table of flags that also writes `--help`. Exit codes: 0 done (or --help), 1 the command failed,
 * 2 bad usage (unknown flag, bad value), with the message naming the flag and the valid ones.
 */
import { parseArgs } from 'node:util';

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** One line for --help; a value placeholder may lead it, e.g. '<n>  steps between snapshots'. */
  help: string;
}
export type FlagTable = Record<string, FlagSpec>;

/** Bad usage: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** --help was given: the message is the help text (stdout, exit 0). */
export class HelpRequested extends Error {
  override name = 'HelpRequested';
}

export type FlagValues = Record<string, string | boolean | undefined>;

/**
 * Parse argv against `flags` (plus --help / -h). Throws HelpRequested with `helpText(usage, flags)` when
 * help was asked for, UsageError for an unknown flag, a missing value or a stray argument.
 */
export function parseFlags(argv: string[], flags: FlagTable, usage: string, footer = ''): FlagValues {
  const options = Object.fromEntries(Object.entries(flags).map(([k, f]) => [k, { type: f.type }]));
  let values: FlagValues;
  try {
    values = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values as FlagValues;
  } catch (e) {
    throw new UsageError(explain(e as Error & { code?: string }, argv, flags));
  }
  if (values['help']) throw new HelpRequested(helpText(usage, flags, footer));
  delete values['help'];
  return values;
}

function explain(e: Error & { code?: string }, argv: string[], flags: FlagTable): string {
  const names = Object.keys(flags);
  const valid = `valid flags: ${names.map((n) => `--${n}`).join(' ')} --help`;
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const bad = /'(-{1,2}[^']+)'/.exec(e.message)?.[1] ?? argv.find((a) => a.startsWith('-')) ?? '?';
    const name = bad.replace(/^-+/, '').split('=')[0]!;
    const near = names.filter((n) => n.startsWith(name) || name.startsWith(n) || editDistance(n, name) <= 2);
    return `unknown flag ${bad}${near.length ? ` (did you mean ${near.map((n) => `--${n}`).join(' or ')}?)` : ''}; ${valid}`;
  }
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    return `unexpected argument: ${/'([^']+)'/.exec(e.message)?.[1] ?? argv.find((a) => !a.startsWith('-'))}; flags look like --epochs 3; ${valid}`;
  }
  return `${e.message.split('\n')[0]}; ${valid}`;
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** `usage` then one line per flag. */
export function helpText(usage: string, flags: FlagTable, footer = ''): string {
  const rows = Object.entries(flags).map(([name, f]) => {
    const [arg, ...rest] = f.type === 'string' && f.help.startsWith('<') ? f.help.split(/(?<=>)\s+/) : ['', f.help];
    return [`  --${name}${arg ? ` ${arg}` : ''}`, rest.join(' ')] as const;
  });
  rows.push(['  --help', 'print this help and exit']);
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return `${usage}\n\n${rows.map(([l, r]) => l.padEnd(width) + r).join('\n')}\n${footer ? `\n${footer}\n` : ''}`;
}

/**
 * Run a CLI's main: --help to stdout (exit 0); a UsageError (exit 2) or any other error (exit 1) on stderr.
 * `main` returns normally for exit 0.
 */
export function runCli(name: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      if (e instanceof HelpRequested) {
        process.stdout.write(e.message);
        process.exit(0);
      }
      const usage = e instanceof UsageError;
      process.stderr.write(`${name}: ${usage ? '' : 'failed: '}${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(usage ? 2 : 1);
    },
  );
}
