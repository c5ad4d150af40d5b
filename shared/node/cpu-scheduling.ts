/**
 * Linux CPU scheduling policy for a throughput server. Under SCHED_BATCH a thread that wakes up (a socket
 * became readable, a model thread answered) does not preempt the running one; it waits for the current
 * slice to end. The event loop then handles the requests that arrived meanwhile in one go instead of
 * interrupting a forward pass per packet, and the model threads keep their caches warm. `npm run bench:api`
 * measured it (docs/BENCHMARKS.md). Set with util-linux's `chrt` on every thread of the process; threads
 * started later inherit the policy.
 */
import { execFile } from 'node:child_process';
import { procStatFields, statField } from './proc-stat.js';

export type CpuScheduling = 'batch' | 'normal';

export interface SchedulingResult {
  applied: boolean;
  /** Why it was not applied (no Linux, no chrt, refused). */
  reason?: string;
}

/** Put every thread of process `pid` (default: this one) under SCHED_BATCH or back to SCHED_OTHER. */
export function setCpuScheduling(policy: CpuScheduling, pid = process.pid): Promise<SchedulingResult> {
  if (process.platform !== 'linux') return Promise.resolve({ applied: false, reason: `scheduling policies are set on Linux only (this is ${process.platform})` });
  const flag = policy === 'batch' ? '--batch' : '--other';
  return new Promise((resolve) => {
    execFile('chrt', [flag, '--all-tasks', '--pid', '0', String(pid)], { timeout: 5000 }, (err, _out, stderr) => {
      if (!err) resolve({ applied: true });
      else if ((err as NodeJS.ErrnoException).code === 'ENOENT') resolve({ applied: false, reason: 'chrt (util-linux) is not installed' });
      else resolve({ applied: false, reason: (stderr || err.message).trim() });
    });
  });
}

const POLICY_NAMES: Record<number, string> = { 0: 'normal', 1: 'fifo', 2: 'rr', 3: 'batch', 5: 'idle', 6: 'deadline' };

/** The scheduling policy of thread `tid` of process `pid` ('normal', 'batch', …), from /proc; null off Linux. */
export function threadSchedulingPolicy(pid: number, tid: number): string | null {
  const fields = procStatFields(`/proc/${pid}/task/${tid}/stat`);
  if (!fields) return null;
  const policy = statField(fields, 41);
  return POLICY_NAMES[policy] ?? `policy ${policy}`;
}
