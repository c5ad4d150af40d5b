import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { parseApiEnv } from '../api/server.js';
import { setCpuScheduling, threadSchedulingPolicy } from '../shared/node/cpu-scheduling.js';

const linux = process.platform === 'linux';
let child: ChildProcess | undefined;
afterEach(() => {
  child?.kill();
  child = undefined;
});

describe('CPU scheduling policy', () => {
  it.skipIf(!linux)('puts every thread of a process under SCHED_BATCH and back', async () => {
    // A real multi-threaded process: node with a worker thread (so --all-tasks matters).
    child = spawn(process.execPath, ['-e', "new (require('node:worker_threads').Worker)('setInterval(() => {}, 1000)', { eval: true }); setInterval(() => {}, 1000)"]);
    const pid = child.pid!;
    const { readdirSync } = await import('node:fs');
    const tids = async () => {
      // Wait for the worker thread to exist (node starts ~6 helper threads; the worker adds one more).
      for (let i = 0; i < 100; i++) {
        const t = readdirSync(`/proc/${pid}/task`).map(Number);
        if (t.length >= 7) return t;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('child did not start its threads');
    };
    const all = await tids();
    expect(all.map((t) => threadSchedulingPolicy(pid, t))).toEqual(all.map(() => 'normal'));
    expect(await setCpuScheduling('batch', pid)).toEqual({ applied: true });
    expect(new Set(all.map((t) => threadSchedulingPolicy(pid, t)))).toEqual(new Set(['batch']));
    expect(await setCpuScheduling('normal', pid)).toEqual({ applied: true });
    expect(new Set(all.map((t) => threadSchedulingPolicy(pid, t)))).toEqual(new Set(['normal']));
  });

  it.skipIf(!linux)('says why when it cannot apply the policy', async () => {
    const r = await setCpuScheduling('batch', 2 ** 22 + 12345); // no such process
    expect(r.applied).toBe(false);
    expect(r.reason).toMatch(/\S/);
  });

  it('CPU_SCHEDULING defaults to batch and rejects other values by name', () => {
    expect(parseApiEnv({}).CPU_SCHEDULING).toBe('batch');
    expect(parseApiEnv({ CPU_SCHEDULING: 'normal' }).CPU_SCHEDULING).toBe('normal');
    expect(() => parseApiEnv({ CPU_SCHEDULING: 'fast' })).toThrow(/CPU_SCHEDULING must be 'batch' or 'normal'/);
  });
});
