/**
 * Linux /proc/<pid>/task/<tid>/stat (proc(5)): the fields after the command name, which may itself hold
 * spaces and parentheses. Index i of the result is field i + 3 of the man page (0: state).
 */
import { readFileSync } from 'node:fs';

/** The fields from `state` on; null where the file cannot be read (not Linux, thread gone). */
export function procStatFields(path: string): string[] | null {
  try {
    const s = readFileSync(path, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Field `n` (1-based, as numbered in proc(5)) of a stat file's fields. */
export const statField = (fields: string[], n: number): number => Number(fields[n - 3]);

/** The machine's CPU time by kind since boot (Linux /proc/stat, clock ticks summed over all CPUs). */
export type SystemCpu = { busy: number; idle: number; steal: number };

/**
 * The first line of /proc/stat: busy (user, nice, system, irq, softirq), idle (idle, iowait) and steal —
 * time the hypervisor gave this VM's virtual CPUs to someone else. Null where there is no /proc/stat.
 */
export function systemCpu(path = '/proc/stat'): SystemCpu | null {
  try {
    const f = readFileSync(path, 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const at = (i: number) => f[i] ?? 0;
    return { busy: at(0) + at(1) + at(2) + at(5) + at(6), idle: at(3) + at(4), steal: at(7) };
  } catch {
    return null;
  }
}

/** The share of the machine's CPU time between two readings that went to each kind (they sum to 1). */
export function cpuShares(a: SystemCpu, b: SystemCpu): SystemCpu {
  const d = { busy: b.busy - a.busy, idle: b.idle - a.idle, steal: b.steal - a.steal };
  const total = d.busy + d.idle + d.steal || 1;
  return { busy: d.busy / total, idle: d.idle / total, steal: d.steal / total };
}
