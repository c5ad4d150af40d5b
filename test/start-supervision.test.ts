import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shutdownOnSignal, superviseChild, type ChildLike, type Timers } from '../scripts/supervise.js';

const root = path.resolve(import.meta.dirname, '..');

/** Timers on a clock the test moves by hand (no wall time). */
function fakeTimers(): Timers & { advance(ms: number): Promise<void>; pending(): number } {
  let now = 0;
  let seq = 0;
  const queue = new Map<number, { at: number; fn: () => void }>();
  const flush = () => new Promise<void>((r) => setImmediate(r));
  return {
    now: () => now,
    setTimeout: (fn, ms) => (queue.set(++seq, { at: now + ms, fn }), seq),
    clearTimeout: (h) => void queue.delete(h as number),
    pending: () => queue.size,
    async advance(ms) {
      const end = now + ms;
      await flush();
      for (;;) {
        const next = [...queue].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
        if (!next) break;
        queue.delete(next[0]);
        now = next[1].at;
        next[1].fn();
        await flush();
      }
      now = end;
      await flush();
    },
  };
}

let nextPid = 1000;
/** A child process double: records signals; exits on them unless told to ignore them. */
class FakeChild extends EventEmitter implements ChildLike {
  readonly pid = nextPid++;
  signals: string[] = [];
  constructor(private readonly ignore: readonly string[] = []) {
    super();
  }
  kill(signal: NodeJS.Signals): boolean {
    this.signals.push(signal);
    if (!this.ignore.includes(signal)) queueMicrotask(() => this.die(signal === 'SIGTERM' ? 0 : null, signal === 'SIGTERM' ? null : signal));
    return true;
  }
  die(code: number | null, signal: NodeJS.Signals | null = null): void {
    this.emit('exit', code, signal);
  }
}

function setup(opts: { ignore?: string[]; stopTimeoutMs?: number } = {}) {
  const timers = fakeTimers();
  const children: FakeChild[] = [];
  const logs: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const sup = superviseChild({
    name: 'worker',
    timers,
    stopTimeoutMs: opts.stopTimeoutMs ?? 25_000,
    killWaitMs: 2_000,
    log: (level, msg, fields) => logs.push({ level, msg, ...(fields ? { fields } : {}) }),
    spawn: () => {
      const c = new FakeChild(opts.ignore);
      children.push(c);
      return c;
    },
  });
  const settled = (p: Promise<unknown>) => {
    let done = false;
    void p.then(() => (done = true));
    return () => done;
  };
  return { timers, children, logs, sup, settled };
}

describe('superviseChild (fake clock)', () => {
  it('restarts a crashed child after a back-off that doubles up to 30 s and resets after a healthy run', async () => {
    const { timers, children, logs, sup } = setup();
    expect(children).toHaveLength(1);
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      children.at(-1)!.die(null, 'SIGKILL');
      expect(sup.current()).toBeNull();
      const delay = logs.at(-1)!.fields!['restartInMs'] as number;
      delays.push(delay);
      await timers.advance(delay - 1);
      expect(children).toHaveLength(i + 1); // not yet
      await timers.advance(1);
      expect(children).toHaveLength(i + 2);
      expect(sup.current()).toBe(children.at(-1));
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    expect(logs.filter((l) => l.msg === 'worker exited unexpectedly; restarting')).toHaveLength(7);
    expect(logs.at(-1)).toMatchObject({ msg: 'worker started', fields: { pid: children.at(-1)!.pid, restarts: 7 } });

    await timers.advance(60_000); // ran for a while: healthy
    children.at(-1)!.die(1); // any code counts, not only signals
    expect(logs.at(-1)).toMatchObject({ level: 'warn', fields: { code: 1, restartInMs: 1000 } });
    await timers.advance(1000);
    expect(children).toHaveLength(9);
  });

  it('does not restart a child that exits 2 (invalid configuration)', async () => {
    const { timers, children, logs, sup, settled } = setup();
    children[0]!.die(2);
    expect(logs.at(-1)).toMatchObject({ level: 'error', msg: expect.stringMatching(/code 2 .*not restarting/) });
    await timers.advance(10 * 60_000);
    expect(children).toHaveLength(1);
    const stopped = settled(sup.stop());
    await timers.advance(0);
    expect(stopped()).toBe(true);
  });

  it('stop: SIGTERM, and the exit event ends it', async () => {
    const { timers, children, sup, settled } = setup();
    const stopped = settled(sup.stop());
    await timers.advance(0);
    expect(stopped()).toBe(true);
    expect(children[0]!.signals).toEqual(['SIGTERM']);
    await timers.advance(60_000);
    expect(children).toHaveLength(1); // a stopped child is not restarted
  });

  it('stop: a child that ignores SIGTERM is SIGKILLed after the timeout', async () => {
    const { timers, children, sup, settled, logs } = setup({ ignore: ['SIGTERM'], stopTimeoutMs: 25_000 });
    const stopped = settled(sup.stop());
    await timers.advance(24_999);
    expect(stopped()).toBe(false);
    expect(children[0]!.signals).toEqual(['SIGTERM']);
    await timers.advance(1);
    expect(children[0]!.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(stopped()).toBe(true);
    expect(logs.some((l) => /did not exit within 25000 ms of SIGTERM/.test(l.msg))).toBe(true);
    expect(children).toHaveLength(1);
  });

  it('stop: resolves even if the child survives SIGKILL (stuck in the kernel)', async () => {
    const { timers, sup, settled } = setup({ ignore: ['SIGTERM', 'SIGKILL'], stopTimeoutMs: 25_000 });
    const stopped = settled(sup.stop());
    await timers.advance(25_000 + 1_999);
    expect(stopped()).toBe(false);
    await timers.advance(1);
    expect(stopped()).toBe(true);
  });

  it('stop: at once when the child is already dead (waiting to restart), and no restart follows', async () => {
    const { timers, children, sup, settled } = setup();
    children[0]!.die(null, 'SIGKILL');
    const stopped = settled(sup.stop());
    await timers.advance(0);
    expect(stopped()).toBe(true);
    await timers.advance(10 * 60_000);
    expect(children).toHaveLength(1);
    expect(timers.pending()).toBe(0);
  });

  it('stop: at once when the child never started (spawn failed)', async () => {
    const timers = fakeTimers();
    let spawns = 0;
    const sup = superviseChild({
      name: 'worker',
      timers,
      stopTimeoutMs: 25_000,
      log: () => {},
      spawn: () => {
        spawns++;
        const c = new EventEmitter() as EventEmitter & ChildLike;
        Object.assign(c, { pid: undefined, kill: () => false });
        queueMicrotask(() => c.emit('error', new Error('spawn ENOENT')));
        return c;
      },
    });
    await timers.advance(1000); // the failed spawn is retried with back-off
    expect(spawns).toBe(2);
    let done = false;
    void sup.stop().then(() => (done = true));
    await timers.advance(0);
    expect(done).toBe(true);
  });
});

describe('shutdownOnSignal (fake clock)', () => {
  const make = (shutdown: () => Promise<void>) => {
    const timers = fakeTimers();
    const exits: number[] = [];
    const forced: number[] = [];
    const handler = shutdownOnSignal({
      shutdown,
      exit: (c) => exits.push(c),
      onForcedExit: () => forced.push(exits.length),
      timeoutMs: 30_000,
      log: () => {},
      timers,
    });
    return { timers, exits, forced, handler };
  };

  it('exits 0 once shutdown has finished', async () => {
    const { timers, exits, forced, handler } = make(async () => {});
    handler('SIGINT');
    await timers.advance(0);
    expect(exits).toEqual([0]);
    expect(forced).toEqual([]);
    await timers.advance(60_000);
    expect(exits).toEqual([0]); // the timeout was cleared
  });

  it('a second signal exits at once (after killing children)', async () => {
    const { timers, exits, forced, handler } = make(() => new Promise(() => {}));
    handler('SIGINT');
    await timers.advance(100);
    expect(exits).toEqual([]);
    handler('SIGINT');
    expect(exits).toEqual([130]);
    expect(forced).toEqual([0]);
  });

  it('exits 1 when shutdown hangs past the timeout', async () => {
    const { timers, exits, forced, handler } = make(() => new Promise(() => {}));
    handler('SIGTERM');
    await timers.advance(29_999);
    expect(exits).toEqual([]);
    await timers.advance(1);
    expect(exits).toEqual([1]);
    expect(forced).toEqual([0]);
  });
});

describe('npm start supervises its worker (real processes)', () => {
  let dir = '';
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('a worker killed with SIGKILL is restarted; SIGINT then stops everything within the bound', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vicreg-supervise-'));
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'scripts/start.ts')], {
      cwd: root,
      env: {
        ...process.env,
        S3_ENDPOINT: '',
        S3_LOCAL_DIR: dir,
        S3_LOCAL_PORT: '0',
        PORT: '0',
        VICREG_THREADS: '1',
        SERVING_THREADS: '1',
        SHUTDOWN_TIMEOUT_MS: '2000',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    const workerPids = (): number[] => [...log.matchAll(/"msg":"worker started"[^\n]*"pid":(\d+)/g)].map((m) => Number(m[1]));
    const waiters: { re: RegExp; from: number; resolve: (m: RegExpExecArray) => void }[] = [];
    const check = () => {
      for (const w of [...waiters]) {
        const m = w.re.exec(log.slice(w.from));
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    };
    const onData = (b: Buffer) => {
      log += b.toString();
      check();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const waitFor = (re: RegExp, ms: number, from = 0) =>
      new Promise<RegExpExecArray>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${re} in ${ms} ms:\n${log}`)), ms);
        waiters.push({ re, from, resolve: (m) => (clearTimeout(timer), resolve(m)) });
        check();
      });
    try {
      const first = Number((await waitFor(/"msg":"worker started"[^\n]*"pid":(\d+)/, 60_000))[1]);
      // The worker's own first line: it is up and polling. (The API may still be loading its model: the
      // SIGINT below must stop npm start in that state too.)
      await waitFor(/"msg":"worker\.start"/, 60_000);
      const mark = log.length;
      process.kill(first, 'SIGKILL');
      // The bounds below only give up on a hung process; the back-off itself is checked on the fake clock above.
      await waitFor(/"msg":"worker exited unexpectedly; restarting"[^\n]*"signal":"SIGKILL"/, 60_000, mark);
      const second = Number((await waitFor(/"msg":"worker started"[^\n]*"pid":(\d+)/, 60_000, mark))[1]);
      expect(second).not.toBe(first);
      expect(alive(second)).toBe(true);

      child.kill('SIGINT');
      // Exit 0 is the clean path; npm start's own bound (SHUTDOWN_TIMEOUT_MS + 10 s) would exit 1 instead
      // (the fake-clock tests above check that bound), so no wall-clock reading is needed here.
      expect(await exit).toBe(0);
      expect(log).not.toMatch(/shutdown did not finish/);
      expect(alive(second)).toBe(false);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      for (const pid of workerPids()) if (alive(pid)) process.kill(pid, 'SIGKILL'); // no orphans when it fails
    }
  }, 90_000);
});
