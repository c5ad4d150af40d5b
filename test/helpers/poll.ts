type Truthy<T> = Exclude<T, false | 0 | '' | null | undefined>;

/**
 * Poll `probe` until it gives a truthy value, and return that value. A probe that throws counts as "not
 * yet". On timeout (by default just under vitest's 120 s test timeout, so this message wins) the error
 * names `what` and the last value or error seen, so a failing test says what it was waiting for.
 */
export async function until<T>(what: string, probe: () => T | Promise<T>, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<Truthy<T>> {
  const { timeoutMs = 100_000, intervalMs = 100 } = opts;
  const end = Date.now() + timeoutMs;
  for (;;) {
    let last: string;
    try {
      const v = await probe();
      if (v) return v as Truthy<T>;
      last = `value: ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;
    } catch (e) {
      last = `error: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (Date.now() >= end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last ${last}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
