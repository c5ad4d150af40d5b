/**
 * Structured logs for every part of the project (API, worker, `npm start`): one JSON object per line,
 * `{ time, level, msg, ...bound fields, ...fields }`. Where a line goes is the caller's choice (`write`):
 * the API writes to stdout, the worker and `npm start` to stderr (their stdout carries results).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** The same logger with `fields` added to every line (e.g. the worker's id). */
  child(fields: Record<string, unknown>): Logger;
}

export interface JsonLoggerOptions {
  level?: LogLevel;
  /** Receives each line without its newline; default console.log. */
  write?: (line: string) => void;
  now?: () => number;
  /** Fields on every line. */
  base?: Record<string, unknown>;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createJsonLogger(opts: JsonLoggerOptions = {}): Logger {
  const min = ORDER[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => console.log(line));
  const now = opts.now ?? Date.now;
  const base = opts.base ?? {};
  const emit = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    write(JSON.stringify({ time: new Date(now()).toISOString(), level, msg, ...base, ...fields }, replacer));
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (fields) => createJsonLogger({ ...opts, base: { ...base, ...fields } }),
  };
}

/** Collects records in memory (tests assert on what was logged). */
export function createMemoryLogger(): Logger & { records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const logger = createJsonLogger({ level: 'debug', write: (line) => records.push(JSON.parse(line) as Record<string, unknown>) });
  return Object.assign(logger, { records });
}

/** Errors keep their name, message and stack; non-finite numbers stay visible as strings instead of null. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value;
}
