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
