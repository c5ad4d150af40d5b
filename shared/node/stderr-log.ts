import { createJsonLogger, type JsonLoggerOptions, type Logger } from '../log.js';

/** The JSON-lines logger on stderr, for processes whose stdout carries results (worker, CLIs, npm start). */
export function createStderrLogger(opts: Omit<JsonLoggerOptions, 'write'> = {}): Logger {
  return createJsonLogger({ ...opts, write: (line) => void process.stderr.write(line + '\n') });
}
