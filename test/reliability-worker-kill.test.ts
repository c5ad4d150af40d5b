import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { superviseChild, type Supervisor } from '../scripts/supervise.js';
import { readLatest } from '../shared/checkpoint/publish.js';
import { loadTrainState } from '../shared/checkpoint/train-state.js';
import { systemClock } from '../shared/jobs/clock.js';
import { createJob, readJob } from '../shared/jobs/jobs.js';
import { jobStatePrefix } from '../shared/jobs/schema.js';
import { until } from './helpers/poll.js';
import { withLocalS3 } from './helpers/s3.js';
import { TINY_JOB, WORKER_TEST_ENV } from './helpers/worker-job.js';

/**
 * docs/RELIABILITY.md, "worker killed mid-job": the worker under `npm start`'s supervisor (the same
 * superviseChild and the same command as scripts/start.ts) is SIGKILLed while training; the supervisor
 * restarts it, and the new worker takes the job over once the dead one's lease expires, resumes it from
 * the last snapshot and finishes it, with no one touching it. Waits are for states in the bucket and the
 * logs; no assertion depends on how long anything took.
 */
const ROOT = join(import.meta.dirname, '..');
const WORKER_ENV = { ...WORKER_TEST_ENV, LOG_LEVEL: 'info' };
const JOB = TINY_JOB;

/** A guard against hanging for ever, far above what the states take; not a performance bound. */
const GUARD = { timeoutMs: 150_000 };

describe('worker killed mid-job under the supervisor', () => {
  const s3 = withLocalS3();
  let sup: Supervisor | null = null;
  const children: ChildProcess[] = [];
  afterAll(async () => {
    await sup?.stop();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  it('is restarted, and the restarted worker resumes the job from its snapshot and finishes it', async () => {
    const store = s3.current.store;
    const job = await createJob(store, JOB, systemClock);
    const logs = new Map<number, string[]>();
    const supLog: { msg: string; fields?: Record<string, unknown> }[] = [];
    sup = superviseChild({
      name: 'worker',
      stopTimeoutMs: 10_000,
      killWaitMs: 2_000,
      log: (_level, msg, fields) => supLog.push({ msg, ...(fields ? { fields } : {}) }),
      spawn: () => {
        const c = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'gpu-worker/main.ts')], {
          cwd: ROOT,
          env: { ...process.env, ...s3.current.env, ...WORKER_ENV },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        const lines: string[] = [];
        logs.set(c.pid!, lines);
        c.stderr!.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
        children.push(c);
        return c;
      },
    });

    // Mid-job: running, leased, with a training-state snapshot past step 4.
    const snap = await until('a snapshot at step ≥ 4', async () => {
      const s = await loadTrainState(store, jobStatePrefix(job.id));
      return s && s.step >= 4 ? s : null;
    }, GUARD);
    const victim = sup.current()!;
    const running = await readJob(store, job.id);
    expect(running).toMatchObject({ state: 'running', attempts: 1 });
    victim.kill('SIGKILL');

    // Nobody intervenes from here on.
    const done = await until('the job to end', async () => {
      const j = await readJob(store, job.id);
      return j && j.state !== 'running' && j.state !== 'queued' ? j : null;
    }, GUARD);
    expect(done.state).toBe('succeeded');
    // The 5-s test lease can also lapse on a loaded machine while the rescuer evaluates; it is then taken
    // over once more, and the job must still finish on its own.
    expect(done.attempts).toBeGreaterThanOrEqual(2);
    expect(done.logTail.some((l) => /\(attempt [2-9], previous lease expired\)/.test(l))).toBe(true);
    expect(done.result?.version).toBeTruthy();
    expect((await readLatest(store))?.version).toBe(done.result!.version);

    // The supervisor saw the SIGKILL and started a new process, which resumed rather than restarted.
    expect(supLog.some((l) => l.msg === 'worker exited unexpectedly; restarting' && l.fields?.['signal'] === 'SIGKILL')).toBe(true);
    const rescuer = sup.current()!;
    expect(rescuer.pid).not.toBe(victim.pid);
    const resumed = logs
      .get(rescuer.pid!)!
      .filter((l) => l.startsWith('{')) // Node's own warnings are plain text
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((r) => r['msg'] === 'job.resumed');
    expect(resumed?.['fromStep']).toBeGreaterThanOrEqual(snap.step);
  }, 200_000);
});
