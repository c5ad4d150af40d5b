import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../shared/node/backend-node.js';
import { createVicregNet } from '../shared/model/vicreg-net.js';
import { DEFAULT_CPU_MODEL } from '../shared/model/config.js';
import { compileServingGraph } from '../shared/model/serving-graph.js';
const b = await initNodeBackend({ threads: Number(process.env.T ?? 1), log: () => {} });
console.log(b.detail);
const model = createVicregNet(DEFAULT_CPU_MODEL, 0).toLayersModel();
const g = compileServingGraph(model)!;
console.log('ops', g.ops, 'layers', model.layers.length);
const x = tf.randomNormal([16, 28, 28, 1]) as tf.Tensor4D;
const a = model.predict(x) as tf.Tensor; const c = g.run(x);
const d = tf.max(tf.abs(tf.sub(a, c))).dataSync()[0]; const m = tf.max(tf.abs(a)).dataSync()[0];
console.log('max abs diff', d, 'max abs', m);
for (const bs of [1, 4, 8, 16, 32, 64]) {
  const xb = tf.randomNormal([bs, 28, 28, 1]) as tf.Tensor4D;
  const time = (f: () => tf.Tensor) => { for (let i = 0; i < 3; i++) f().dispose(); let n = 0; const t0 = performance.now(); while (performance.now() - t0 < 1500) { const y = f(); y.dataSync(); y.dispose(); n++; } return (performance.now() - t0) / n; };
  const tp = time(() => model.predict(xb, { batchSize: bs }) as tf.Tensor);
  const tg = time(() => g.run(xb));
  console.log(`batch ${bs}: predict ${tp.toFixed(2)} ms (${(bs / tp * 1000).toFixed(0)} img/s), graph ${tg.toFixed(2)} ms (${(bs / tg * 1000).toFixed(0)} img/s)`);
  xb.dispose();
}
console.log('tensors', tf.memory().numTensors);
