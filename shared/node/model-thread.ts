/**
 * The model thread: a Node worker_thread with its own tfjs backend that holds one network and runs its
 * forward pass, so the main thread keeps reading, decoding and answering requests while it computes.
 * Started by shared/node/model-thread-client.ts; protocol in model-thread-protocol.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { filesToArtifacts } from '../checkpoint/model-files.js';
import { servingForward, type ServingForward } from '../model/serving-graph.js';
import { initNodeBackend } from './backend-node.js';
import { ModelThreadInit, ToModelThread, type FromModelThread } from './model-thread-protocol.js';

const port = parentPort;
if (!port) throw new Error('model-thread.ts runs as a worker_thread (start it with startModelThread)');

const send = (m: FromModelThread, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

let model: tf.LayersModel | null = null;
let net: ServingForward | null = null;
let shape: [number, number, number] = [0, 0, 0];
let dimension = 0;

async function load(m: Extract<ToModelThread, { type: 'load' }>): Promise<void> {
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(filesToArtifacts(m.modelJson, m.weightsBin)));
  shape = m.inputShape;
  dimension = m.dimension;
  net?.dispose();
  model?.dispose();
  model = loaded;
  net = servingForward(loaded, shape);
  // First call allocates and compiles kernels; do it now rather than on the first request.
  await forward(new Float32Array(shape[0] * shape[1] * shape[2]), 1);
}

async function forward(input: Float32Array, n: number): Promise<Float32Array> {
  if (!model || !net) throw new Error('no model is loaded in the model thread');
  const [h, w, c] = shape;
  if (input.length !== n * h * w * c) throw new Error(`forward: ${input.length} values for ${n} images of ${h}×${w}×${c}`);
  const x = tf.tensor4d(input, [n, h, w, c]);
  const y = net.run(x);
  try {
    const out = await y.data();
    if (out.length !== n * dimension) throw new Error(`model gave ${out.length / n} values per image, expected ${dimension}`);
    // A fresh buffer we can transfer (the backend may reuse or own the one it handed out).
    return out instanceof Float32Array && out.byteOffset === 0 && out.buffer.byteLength === out.byteLength ? out : Float32Array.from(out);
  } finally {
    tf.dispose([x, y]);
  }
}

async function main(): Promise<void> {
  const init = ModelThreadInit.parse(workerData);
  const info = await initNodeBackend({ force: init.backend, threads: init.threads, env: init.env, log: () => {} });
  // Requests run one at a time, in arrival order (the forward pass uses every thread the backend has).
  let chain: Promise<void> = Promise.resolve();
  port!.on('message', (raw: unknown) => {
    chain = chain.then(async () => {
      const parsed = ToModelThread.safeParse(raw);
      if (!parsed.success) {
        send({ type: 'error', message: `model thread: malformed message (${parsed.error.issues[0]?.message})` });
        return;
      }
      const m = parsed.data;
      if (m.type === 'load') {
        try {
          await load(m);
          send({ type: 'loaded', forward: net!.path });
        } catch (e) {
          send({ type: 'error', message: errorText(e) });
        }
      } else {
        try {
          const output = await forward(m.input, m.n);
          send({ type: 'result', id: m.id, output }, [output.buffer as ArrayBuffer]);
        } catch (e) {
          send({ type: 'error', id: m.id, message: errorText(e) });
        }
      }
    });
  });
  send({ type: 'ready', backend: info.detail });
}

main().catch((e: unknown) => send({ type: 'error', message: `model thread could not start: ${errorText(e)}` }));
