import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpuShares, systemCpu } from '../shared/node/proc-stat.js';

// A /proc/stat head as Linux writes it: user nice system idle iowait irq softirq steal guest guest_nice.
const stat = (user: number, idle: number, steal: number) =>
  `cpu  ${user} 5 20 ${idle} 3 1 2 ${steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 12345\n`;

describe('machine CPU shares from /proc/stat', () => {
  it('splits the ticks between two readings into busy, idle and stolen', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'proc-stat-'));
    try {
      const path = join(dir, 'stat');
      await writeFile(path, stat(100, 1000, 50));
      const a = systemCpu(path)!;
      expect(a).toEqual({ busy: 100 + 5 + 20 + 1 + 2, idle: 1003, steal: 50 });
      // 60 busy, 20 idle, 20 stolen ticks later.
      await writeFile(path, stat(160, 1020, 70));
      const s = cpuShares(a, systemCpu(path)!);
      expect(s.busy).toBeCloseTo(0.6, 10);
      expect(s.idle).toBeCloseTo(0.2, 10);
      expect(s.steal).toBeCloseTo(0.2, 10);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('gives null where there is no such file, and zero shares when no time passed', () => {
    expect(systemCpu('/nonexistent/stat')).toBeNull();
    const r = { busy: 1, idle: 2, steal: 3 };
    expect(cpuShares(r, r)).toEqual({ busy: 0, idle: 0, steal: 0 });
  });

  it.skipIf(process.platform !== 'linux')('reads this machine: the counters only grow', () => {
    const a = systemCpu()!;
    let x = 0;
    for (let i = 0; i < 1e6; i++) x += Math.sqrt(i);
    const b = systemCpu()!;
    expect(x).toBeGreaterThan(0);
    expect(b.busy + b.idle + b.steal).toBeGreaterThanOrEqual(a.busy + a.idle + a.steal);
    expect(b.busy).toBeGreaterThanOrEqual(a.busy);
  });
});
