/** Time is passed in (not read from Date.now directly) so lease expiry can be tested without waiting. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export const iso = (clock: Clock, offsetMs = 0): string => new Date(clock.now() + offsetMs).toISOString();
