/**
 * Supervision for `npm start`: keep a child process (the training worker) running — restart it with
 * back-off when it dies unexpectedly — and stop it within a bound. Spawning and time are injected so the
 * tests run on a fake clock.
 */

/** What the supervisor needs from a child process (node's ChildProcess fits). */
export interface ChildLike {
  readonly pid?: number | undefined;
  kill(signal: NodeJS.Signals): boolean;
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
}

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export type SuperviseLog = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface SuperviseOptions {
  /** For log lines, e.g. "worker". */
  name: string;
  spawn: () => ChildLike;
  log: SuperviseLog;
  timers?: Timers;
  /** Restart delay: `initialMs`, doubling after each quick failure, at most `maxMs` (1 s … 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  /** A child that ran at least this long before dying restarts after `initialMs` again (60 s). */
  healthyAfterMs?: number;
  /** Exit codes that mean "restarting will not help" (2: bad configuration). */
  noRestartCodes?: readonly number[];
  /** stop(): how long to wait for the child's exit after SIGTERM before SIGKILL. */
  stopTimeoutMs: number;
  /** stop(): how long to wait after SIGKILL before giving up on the child (2 s). */
  killWaitMs?: number;
}

export interface Supervisor {
  /** The running child, or null (waiting to restart, given up, or stopped). */
  current(): ChildLike | null;
  /**
   * Stop restarting and end the child: SIGTERM, then SIGKILL after stopTimeoutMs. Always resolves,
   * within stopTimeoutMs + killWaitMs, whatever state the child is in (running, dead, never started).
   */
  stop(): Promise<void>;
}

export function superviseChild(o: SuperviseOptions): Supervisor {
  const t = o.timers ?? realTimers;
  const { initialMs, maxMs } = o.backoff ?? { initialMs: 1000, maxMs: 30_000 };
  const healthyAfterMs = o.healthyAfterMs ?? 60_000;
  const noRestart = o.noRestartCodes ?? [2];
  let child: { proc: ChildLike; exited: Promise<void> } | null = null;
  let stopping = false;
  let stopped: Promise<void> | null = null;
  let quickFailures = 0;
  let restarts = 0;
  let restartTimer: unknown;

  const start = (): void => {
    restartTimer = undefined;
    if (stopping) return;
    const startedAt = t.now();
    let markExited!: () => void;
    const exited = new Promise<void>((r) => (markExited = r));
    let ended = false;
    const onEnd = (proc: ChildLike | null, code: number | null, signal: NodeJS.Signals | null, error?: Error): void => {
      if (ended) return;
      ended = true;
      if (child?.proc === proc) child = null;
      markExited();
      if (stopping) return;
      const fields = { pid: proc?.pid, code, signal, ...(error ? { error: error.message } : {}), ranMs: t.now() - startedAt };
      if (code !== null && noRestart.includes(code)) {
        o.log('error', `${o.name} exited with code ${code} (its configuration is invalid): not restarting it`, fields);
        return;
      }
      if (t.now() - startedAt >= healthyAfterMs) quickFailures = 0;
      const delay = Math.min(maxMs, initialMs * 2 ** quickFailures);
      quickFailures += 1;
      restarts += 1;
      o.log('warn', `${o.name} exited unexpectedly; restarting`, { ...fields, restartInMs: delay, restarts });
      restartTimer = t.setTimeout(start, delay);
    };
    let proc: ChildLike;
    try {
      proc = o.spawn();
    } catch (e) {
      onEnd(null, null, null, e instanceof Error ? e : new Error(String(e)));
      return;
    }
    child = { proc, exited };
    proc.once('exit', (code, signal) => onEnd(proc, code, signal));
    // 'error' without a pid: it could not be spawned (no 'exit' follows). Otherwise (a failed kill) it lives on.
    proc.once('error', (err) => (proc.pid === undefined ? onEnd(proc, null, null, err) : o.log('warn', `${o.name}: ${err.message}`)));
    if (proc.pid !== undefined) o.log('info', `${o.name} started`, { pid: proc.pid, ...(restarts ? { restarts } : {}) });
  };

  const waitExit = (exited: Promise<void>, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      const h = t.setTimeout(() => resolve(false), ms);
      void exited.then(() => {
        t.clearTimeout(h);
        resolve(true);
      });
    });

  const stopChild = async (): Promise<void> => {
    if (restartTimer !== undefined) t.clearTimeout(restartTimer);
    restartTimer = undefined;
    const c = child;
    if (!c) return;
    const pid = c.proc.pid;
    c.proc.kill('SIGTERM');
    if (await waitExit(c.exited, o.stopTimeoutMs)) return;
    o.log('warn', `${o.name} did not exit within ${o.stopTimeoutMs} ms of SIGTERM; sending SIGKILL`, { pid });
    c.proc.kill('SIGKILL');
    if (!(await waitExit(c.exited, o.killWaitMs ?? 2000))) o.log('error', `${o.name} did not exit after SIGKILL`, { pid });
  };

  start();
  return {
    current: () => child?.proc ?? null,
    stop: () => {
      stopping = true;
      return (stopped ??= stopChild());
    },
  };
}

export interface ShutdownOnSignalOptions {
  /** Stops everything; its promise settling means the process may exit. */
  shutdown: (signal: NodeJS.Signals) => Promise<void>;
  exit: (code: number) => void;
  /** Exit (code 1) if shutdown has not finished by then. */
  timeoutMs: number;
  /** Called just before a forced exit (second signal, timeout), e.g. to SIGKILL children. */
  onForcedExit?: () => void;
  log: SuperviseLog;
  timers?: Timers;
}

/**
 * The SIGINT/SIGTERM handler: the first signal runs shutdown and exits 0 (1 if it failed or overran
 * timeoutMs); a second signal exits at once (130). Forced exits call onForcedExit first.
 */
export function shutdownOnSignal(o: ShutdownOnSignalOptions): (signal: NodeJS.Signals) => void {
  const t = o.timers ?? realTimers;
  let first: NodeJS.Signals | null = null;
  const force = (code: number): void => {
    try {
      o.onForcedExit?.();
    } finally {
      o.exit(code);
    }
  };
  return (signal) => {
    if (first !== null) {
      o.log('warn', `second signal (${signal}) during shutdown: exiting now`);
      force(130);
      return;
    }
    first = signal;
    o.log('info', 'shutting down', { signal, timeoutMs: o.timeoutMs });
    const timer = t.setTimeout(() => {
      o.log('error', `shutdown did not finish within ${o.timeoutMs} ms: exiting`);
      force(1);
    }, o.timeoutMs);
    o.shutdown(signal).then(
      () => {
        t.clearTimeout(timer);
        o.exit(0);
      },
      (err: unknown) => {
        t.clearTimeout(timer);
        o.log('error', 'shutdown failed', { error: err instanceof Error ? err.message : String(err) });
        o.exit(1);
      },
    );
  };
}
