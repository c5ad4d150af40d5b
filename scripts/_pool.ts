import { readdirSync, readFileSync } from 'node:fs';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { createVicregNet } from '../shared/model/vicreg-net.js';
import { DEFAULT_CPU_MODEL } from '../shared/model/config.js';
import { modelToFiles } from '../shared/checkpoint/model-files.js';
import { startModelThreadPool } from '../shared/node/model-thread-pool.js';
function threadCpu() { const out = new Map<string, number>(); for (const tid of readdirSync('/proc/self/task')) { const s = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); out.set(tid, (Number(f[11]) + Number(f[12])) * 10); } return out; }
await initNodeBackend({ threads: 1, log: () => {} });
const model = createVicregNet(DEFAULT_CPU_MODEL, 0).toLayersModel();
const files = { ...(await modelToFiles(model)), inputShape: [28, 28, 1] as [number, number, number], dimension: 128 };
const pool = await startModelThreadPool(files, 2, { backend: 'wasm', threads: 1, env: {} });
for (const [batch, streams] of [[64, 2], [8, 2]]) {
  const template = new Float32Array(batch * 784).map(() => Math.random() - 0.5);
  let n = 0; const t0 = performance.now(); const th0 = threadCpu();
  await Promise.all(Array.from({ length: streams }, async () => { while (performance.now() - t0 < 4000) { await pool.forward(template.slice(), batch); n += batch; } }));
  const el = (performance.now() - t0) / 1000;
  const busy = [...threadCpu()].map(([t, ms]) => [t, ms - (th0.get(t) ?? 0)] as const).filter(([, ms]) => ms > 0).sort((a, b) => b[1] - a[1]);
  console.log(`batch ${batch} streams ${streams}: ${(n / el).toFixed(0)} img/s; threads ${busy.map(([t, ms]) => `${t}:${ms}`).join(' ')}`);
}
await pool.close();
