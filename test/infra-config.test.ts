import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { ApiEnv, parseApiEnv } from '../api/server.js';
import { WorkerEnv, workerConfigFromEnv } from '../gpu-worker/config.js';
import { readLatest } from '../shared/checkpoint/publish.js';
import { BackendEnv } from '../shared/node/backend-node.js';
import { startLocalS3 } from '../shared/node/local-s3.js';
import { S3Env, s3ConfigFromEnv, type S3Config } from '../shared/store/config.js';
import { createS3Store } from '../shared/store/s3-store.js';

/**
 * Docker cannot run here, so the container infra (infra/Dockerfile.*, infra/compose.yaml, infra/k8s/)
 * is checked against the code instead: every variable a container ends up with is one its program
 * reads, the values pass the program's own parsers, and the variables it cannot do without are set.
 */

const root = path.resolve(import.meta.dirname, '..');
const infra = path.join(root, 'infra');
const read = (p: string): string => readFileSync(p, 'utf8');

type Env = Record<string, string>;
type Program = 'api' | 'worker' | 'seed';

// ---------------------------------------------------------------- what each program reads

const keys = (shape: object): string[] => Object.keys(shape);
const S3_KEYS = keys(S3Env.shape);
const BACKEND_KEYS = keys(BackendEnv.shape);
/** Read with process.env directly (no schema) by shared/node/datasets.ts; the test below keeps that true. */
const DATASET_KEYS = ['FMNIST_DIR', 'MNIST_DIR'];
/** Set by the images for dependencies (npm, libraries); no project code reads it. */
const RUNTIME_KEYS = ['NODE_ENV'];

const READS: Record<Program, Set<string>> = {
  api: new Set([...keys(ApiEnv.shape), ...S3_KEYS, ...BACKEND_KEYS, ...RUNTIME_KEYS]),
  worker: new Set([...keys(WorkerEnv.in.shape), ...S3_KEYS, ...BACKEND_KEYS, ...DATASET_KEYS, ...RUNTIME_KEYS]),
  // compose's store-init: s3ConfigFromEnv only (it runs the API image, whose own ENV is the API's).
  seed: new Set([...S3_KEYS, ...RUNTIME_KEYS]),
};

/** Parses `env` the way the program does at start; throws what the program would print. */
function parseAs(program: Program, env: Env): { s3: S3Config; api?: ApiEnv; worker?: ReturnType<typeof workerConfigFromEnv> } {
  const s3 = s3ConfigFromEnv(env);
  if (program === 'seed') return { s3 };
  const backend = BackendEnv.safeParse(env);
  if (!backend.success) throw new Error(`backend settings: ${backend.error.message}`);
  return program === 'api' ? { s3, api: parseApiEnv(env) } : { s3, worker: workerConfigFromEnv(env) };
}

/** The settings a container cannot run without in these deployments. */
function missingRequired(program: Program, env: Env): string[] {
  // Without S3_ENDPOINT the worker starts an empty embedded s3rver in its own container, and the API
  // would talk to AWS: both must name the shared store.
  // The API listens on all interfaces in a container, which it refuses without API_KEYS.
  const required = ['S3_ENDPOINT', 'S3_BUCKET', ...(program === 'api' ? ['ADMIN_TOKEN', 'API_KEYS'] : [])];
  return required.filter((k) => !env[k]);
}

function unknownKeys(program: Program, env: Env): string[] {
  return Object.keys(env).filter((k) => !READS[program].has(k));
}

// ---------------------------------------------------------------- Dockerfiles

interface Dockerfile {
  env: Env;
  copies: string[];
  cmd: string[];
  expose: number[];
}

/** The final stage's ENV, COPY sources (not --from), CMD and EXPOSE of a Dockerfile. */
function readDockerfile(file: string): Dockerfile {
  const lines = read(file)
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n');
  let out: Dockerfile = { env: {}, copies: [], cmd: [], expose: [] };
  for (const line of lines) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const instr = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (instr === 'FROM') out = { env: {}, copies: [], cmd: [], expose: [] };
    else if (instr === 'ENV') {
      const pairs = [...rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)];
      if (pairs.length === 0) throw new Error(`${file}: unsupported ENV form: ${line}`);
      for (const p of pairs) out.env[p[1]!] = p[2]!.startsWith('"') ? (JSON.parse(p[2]!) as string) : p[2]!;
    } else if (instr === 'COPY' && !/--from=/.test(rest)) {
      const parts = rest.split(/\s+/).filter((p) => !p.startsWith('--'));
      out.copies.push(...parts.slice(0, -1));
    } else if (instr === 'CMD') out.cmd = JSON.parse(rest) as string[];
    else if (instr === 'EXPOSE') out.expose.push(...rest.split(/\s+/).map((p) => Number(p.split('/')[0])));
  }
  return out;
}

const DOCKERFILES: Record<string, { program: Exclude<Program, 'seed'>; entry: string }> = {
  'Dockerfile.api': { program: 'api', entry: 'api/server.ts' },
  'Dockerfile.cpu': { program: 'worker', entry: 'gpu-worker/main.ts' },
  'Dockerfile.gpu': { program: 'worker', entry: 'gpu-worker/main.ts' },
};
const dockerfile = (name: string): Dockerfile => readDockerfile(path.join(infra, name));

describe('Dockerfiles', () => {
  const ignored = read(path.join(root, '.dockerignore'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  it('every infra/Dockerfile.* is checked here', () => {
    const found = readdirSync(infra).filter((f) => f.startsWith('Dockerfile.'));
    expect(found.sort()).toEqual(Object.keys(DOCKERFILES).sort());
  });

  for (const [name, { program, entry }] of Object.entries(DOCKERFILES)) {
    it(`${name}: ENV names only what ${program} reads, and the values parse`, () => {
      const d = dockerfile(name);
      expect(unknownKeys(program, d.env)).toEqual([]);
      // The image alone lacks the store settings; with them supplied, its own ENV must parse.
      expect(() => parseAs(program, { ...d.env, S3_ENDPOINT: 'http://store:9000', S3_BUCKET: 'vicreg' })).not.toThrow();
    });

    it(`${name}: COPY sources exist and are in the build context; CMD runs ${entry}`, () => {
      const d = dockerfile(name);
      for (const src of d.copies) {
        expect(existsSync(path.join(root, src)), `${src} exists`).toBe(true);
        expect(ignored.filter((p) => src === p || src.startsWith(`${p}/`)), `${src} not in .dockerignore`).toEqual([]);
      }
      expect(d.cmd).toEqual(['node', '--import', 'tsx', entry]);
    });
  }

  it('Dockerfile.api listens on all interfaces on the port it exposes', () => {
    const d = dockerfile('Dockerfile.api');
    const s = parseApiEnv(d.env);
    expect(s.HOST).toBe('0.0.0.0');
    expect(d.expose).toEqual([s.PORT]);
  });

  it('the dataset variables allowed without a schema are the ones shared/node/datasets.ts reads', () => {
    const src = read(path.join(root, 'shared/node/datasets.ts'));
    for (const k of DATASET_KEYS) expect(src).toContain(`process.env.${k}`);
  });
});

// ---------------------------------------------------------------- compose

/** The shell variables a user sets; `${VAR:?…}` ones must be among them. */
const SHELL: Env = { ADMIN_TOKEN: 'compose-admin-token-0123456789', API_KEYS: `compose:read+write:${'a'.repeat(64)}` };

/** Compose's interpolation for the forms used here ($$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}). */
function interpolate(s: string, shell: Env, required: Set<string>): string {
  return s.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$\{[^}]*\}/g, (m, name?: string, colon?: string, op?: string, arg?: string, bare?: string) => {
    if (m === '$$') return '$';
    const v = name ?? bare;
    if (v === undefined) throw new Error(`unsupported interpolation ${m}`);
    const set = shell[v];
    const empty = set === undefined || (colon === ':' && set === '');
    if (op === '?') {
      required.add(v);
      if (empty) throw new Error(`required variable ${v} is missing: ${arg}`);
    }
    if (op === '-' && empty) return arg ?? '';
    return set ?? '';
  });
}

function interpolateAll(x: unknown, shell: Env, required: Set<string>): unknown {
  if (typeof x === 'string') return interpolate(x, shell, required);
  if (Array.isArray(x)) return x.map((v) => interpolateAll(v, shell, required));
  if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, interpolateAll(v, shell, required)]));
  return x;
}

const ComposeService = z.looseObject({
  image: z.string().optional(),
  build: z.looseObject({ context: z.string(), dockerfile: z.string() }).optional(),
  command: z.array(z.string()).optional(),
  environment: z.union([z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])), z.array(z.string())]).optional(),
  ports: z.array(z.string()).optional(),
  stop_grace_period: z.string().optional(),
  depends_on: z.record(z.string(), z.looseObject({ condition: z.string() })).optional(),
});
const Compose = z.looseObject({ services: z.record(z.string(), ComposeService) });

function loadCompose(shell: Env): { compose: z.infer<typeof Compose>; required: Set<string> } {
  const raw: unknown = parse(read(path.join(infra, 'compose.yaml')), { merge: true });
  const required = new Set<string>();
  return { compose: Compose.parse(interpolateAll(raw, shell, required)), required };
}

function composeEnv(svc: z.infer<typeof ComposeService>): Env {
  const e = svc.environment ?? {};
  const entries = Array.isArray(e) ? e.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const) : Object.entries(e);
  const out: Env = {};
  for (const [k, v] of entries) {
    // A bare name takes the value from the shell; none of ours should depend on that silently.
    if (v === null) throw new Error(`environment ${k} has no value`);
    out[k] = String(v);
  }
  return out;
}

/** Our programs in compose; every service built from our Dockerfiles must be listed. */
const COMPOSE_PROGRAMS: Record<string, Program> = { api: 'api', worker: 'worker', 'store-init': 'seed' };

function composeContainers(): Array<{ name: string; program: Program; env: Env; set: Env }> {
  const { compose } = loadCompose(SHELL);
  return Object.entries(compose.services)
    .filter(([, svc]) => svc.build)
    .map(([name, svc]) => {
      const program = COMPOSE_PROGRAMS[name];
      if (!program) throw new Error(`compose service ${name} builds one of our images but is not checked`);
      const df = path.relative(root, path.resolve(infra, svc.build!.context, svc.build!.dockerfile));
      const image = dockerfile(path.relative('infra', df));
      const set = composeEnv(svc);
      return { name, program, set, env: { ...image.env, ...set } };
    });
}

const durationMs = (d: string): number => {
  const m = /^(\d+)(ms|s|m)$/.exec(d);
  if (!m) throw new Error(`unsupported duration ${d}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] as 'ms' | 's' | 'm'];
};

describe('infra/compose.yaml', () => {
  it('requires ADMIN_TOKEN and API_KEYS from the shell and names every service built from our Dockerfiles', () => {
    expect(() => loadCompose({})).toThrow(/ADMIN_TOKEN/);
    expect(() => loadCompose({ ADMIN_TOKEN: SHELL['ADMIN_TOKEN']! })).toThrow(/API_KEYS/);
    expect([...loadCompose(SHELL).required]).toEqual(['ADMIN_TOKEN', 'API_KEYS']);
    expect(composeContainers().map((c) => c.name).sort()).toEqual(Object.keys(COMPOSE_PROGRAMS).sort());
  });

  for (const name of Object.keys(COMPOSE_PROGRAMS)) {
    it(`${name}: sets only variables its program reads, every required one, and they parse`, () => {
      const c = composeContainers().find((x) => x.name === name)!;
      expect(unknownKeys(c.program, c.set)).toEqual([]);
      expect(missingRequired(c.program, c.env)).toEqual([]);
      expect(() => parseAs(c.program, c.env)).not.toThrow();
    });
  }

  it('all programs use one store, the MinIO service, with its root credentials', () => {
    const { compose } = loadCompose(SHELL);
    const stores = composeContainers().map((c) => parseAs(c.program, c.env).s3);
    for (const s of stores) expect(s).toEqual(stores[0]);
    const s3 = stores[0]!;
    const host = new URL(s3.endpoint!).hostname;
    const minio = compose.services[host];
    expect(minio, `S3_ENDPOINT names the compose service ${host}`).toBeDefined();
    expect(minio!.command).toContain('server');
    const env = composeEnv(minio!);
    expect([env['MINIO_ROOT_USER'], env['MINIO_ROOT_PASSWORD']]).toEqual([s3.accessKeyId, s3.secretAccessKey]);
    // MinIO enforces If-Match / If-None-Match, which the job protocol needs for several workers.
    expect(s3.supportsConditionalWrites).toBe(true);
    expect(s3.forcePathStyle).toBe(true);
  });

  it('publishes the API port it listens on, and starts the programs after the store is seeded', () => {
    const { compose } = loadCompose(SHELL);
    const api = composeContainers().find((c) => c.name === 'api')!;
    const port = parseApiEnv(api.env).PORT;
    expect(compose.services['api']!.ports!.map((p) => Number(p.split(':').at(-1)))).toContain(port);
    for (const name of ['api', 'worker']) expect(compose.services[name]!.depends_on?.['store-init']?.condition).toBe('service_completed_successfully');
  });

  it('gives the worker longer to stop than its SIGTERM snapshot may take', () => {
    const { compose } = loadCompose(SHELL);
    const w = composeContainers().find((c) => c.name === 'worker')!;
    const grace = durationMs(compose.services['worker']!.stop_grace_period ?? '10s');
    expect(grace).toBeGreaterThan(workerConfigFromEnv(w.env).shutdownTimeoutMs);
  });

  describe('store-init script', () => {
    let dir = '';
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('creates the bucket and publishes the bundled checkpoint once (run against a local S3 server)', async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'vicreg-infra-'));
      const { compose } = loadCompose(SHELL);
      const cmd = compose.services['store-init']!.command!;
      const init = composeContainers().find((c) => c.name === 'store-init')!;
      // s3rver starts with another bucket, so the script's CreateBucket is exercised.
      const local = await startLocalS3({ dir, bucket: 'some-other-bucket' });
      try {
        const env = { ...process.env, ...init.env, ...local.env, S3_BUCKET: init.env['S3_BUCKET']! };
        const run = () => promisify(execFile)(cmd[0]!, cmd.slice(1), { cwd: root, env, timeout: 90_000 });
        const bundled = JSON.parse(read(path.join(root, 'checkpoints/bundled/manifest.json'))) as { version: string };
        const first = await run();
        expect(JSON.parse(first.stdout.trim().split('\n').at(-1)!)).toMatchObject({ action: 'published', version: bundled.version });
        const store = createS3Store(s3ConfigFromEnv(env));
        expect((await readLatest(store))?.version).toBe(bundled.version);
        const second = await run();
        expect(JSON.parse(second.stdout.trim().split('\n').at(-1)!)).toMatchObject({ action: 'none', version: bundled.version });
      } finally {
        await local.close();
      }
    });
  });
});

// ---------------------------------------------------------------- Kubernetes

const EnvVar = z.strictObject({
  name: z.string(),
  value: z.string().optional(),
  valueFrom: z
    .strictObject({
      secretKeyRef: z.strictObject({ name: z.string(), key: z.string() }).optional(),
      configMapKeyRef: z.strictObject({ name: z.string(), key: z.string() }).optional(),
    })
    .optional(),
});
const EnvFrom = z.strictObject({
  configMapRef: z.strictObject({ name: z.string() }).optional(),
  secretRef: z.strictObject({ name: z.string() }).optional(),
});
const HttpProbe = z.looseObject({ httpGet: z.looseObject({ path: z.string(), port: z.union([z.string(), z.number()]) }) });
const Container = z.looseObject({
  name: z.string(),
  image: z.string(),
  env: z.array(EnvVar).optional(),
  envFrom: z.array(EnvFrom).optional(),
  ports: z.array(z.looseObject({ name: z.string().optional(), containerPort: z.number() })).optional(),
  readinessProbe: HttpProbe.optional(),
  livenessProbe: HttpProbe.optional(),
  resources: z
    .looseObject({
      requests: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
      limits: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
    })
    .optional(),
  volumeMounts: z.array(z.looseObject({ name: z.string(), mountPath: z.string() })).optional(),
});
const Deployment = z.looseObject({
  kind: z.literal('Deployment'),
  metadata: z.looseObject({ name: z.string() }),
  spec: z.looseObject({
    template: z.looseObject({
      spec: z.looseObject({
        containers: z.array(Container),
        initContainers: z.array(Container).optional(),
        terminationGracePeriodSeconds: z.number().optional(),
      }),
    }),
  }),
});
const Service = z.looseObject({
  kind: z.literal('Service'),
  spec: z.looseObject({
    selector: z.record(z.string(), z.string()),
    ports: z.array(z.looseObject({ port: z.number(), targetPort: z.union([z.string(), z.number()]) })),
  }),
});
const DataObject = z.looseObject({
  kind: z.enum(['Secret', 'ConfigMap']),
  metadata: z.looseObject({ name: z.string() }),
  data: z.record(z.string(), z.string()).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
});

const k8sDir = path.join(infra, 'k8s');
const Kustomization = z.looseObject({ resources: z.array(z.string()) });

function loadK8s(): { objects: Array<Record<string, unknown>>; resources: string[] } {
  const { resources } = Kustomization.parse(parse(read(path.join(k8sDir, 'kustomization.yaml'))));
  const objects = resources.flatMap((f) =>
    parseAllDocuments(read(path.join(k8sDir, f))).map((d) => {
      if (d.errors.length) throw new Error(`${f}: ${d.errors.map((e) => e.message).join('; ')}`);
      return d.toJS() as Record<string, unknown>;
    }),
  );
  return { objects, resources };
}

/** The image names in the manifests (kustomization.yaml maps them to a registry) and what builds them. */
const K8S_IMAGES: Record<string, string> = {
  'vicreg-api': 'Dockerfile.api',
  'vicreg-worker-gpu': 'Dockerfile.gpu',
  'vicreg-worker-cpu': 'Dockerfile.cpu',
};
const K8S_PROGRAMS: Record<string, Program> = { 'vicreg-api/api': 'api', 'vicreg-worker/worker': 'worker' };

/** What a Secret's value stands for when the test resolves a reference: plausible, long enough for ADMIN_TOKEN, API_KEYS' form. */
const secretPlaceholder = (key: string): string => (key === 'API_KEYS' ? `placeholder:read+write:${'0'.repeat(64)}` : `placeholder-${key.toLowerCase()}-0123456789`);

interface K8sContainer {
  id: string;
  program: Program;
  container: z.infer<typeof Container>;
  deployment: z.infer<typeof Deployment>;
  set: Env;
  env: Env;
}

function k8sContainers(): K8sContainer[] {
  const { objects } = loadK8s();
  const data = new Map<string, z.infer<typeof DataObject>>();
  for (const o of objects) {
    const d = DataObject.safeParse(o);
    if (d.success) data.set(`${d.data.kind}/${d.data.metadata.name}`, d.data);
  }
  const dataKeys = (kind: 'Secret' | 'ConfigMap', name: string): Env => {
    const d = data.get(`${kind}/${name}`);
    if (!d) throw new Error(`${kind} ${name} is referenced but not defined`);
    const all = { ...d.data, ...d.stringData };
    return kind === 'Secret' ? Object.fromEntries(Object.keys(all).map((k) => [k, secretPlaceholder(k)])) : all;
  };
  const out: K8sContainer[] = [];
  for (const o of objects) {
    if (o['kind'] !== 'Deployment') continue;
    const dep = Deployment.parse(o);
    for (const c of dep.spec.template.spec.containers) {
      const id = `${dep.metadata.name}/${c.name}`;
      const program = K8S_PROGRAMS[id];
      if (!program) throw new Error(`container ${id} is not checked`);
      const set: Env = {};
      for (const f of c.envFrom ?? []) {
        if (f.configMapRef) Object.assign(set, dataKeys('ConfigMap', f.configMapRef.name));
        if (f.secretRef) Object.assign(set, dataKeys('Secret', f.secretRef.name));
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        if (ref) {
          const kind = e.valueFrom?.secretKeyRef ? 'Secret' : 'ConfigMap';
          const value = dataKeys(kind, ref.name)[ref.key];
          if (value === undefined) throw new Error(`${id}: ${e.name} refers to ${kind} ${ref.name} key ${ref.key}, which it does not have`);
          set[e.name] = value;
        } else if (e.value !== undefined) set[e.name] = e.value;
        else throw new Error(`${id}: ${e.name} has no value`);
      }
      const df = K8S_IMAGES[c.image];
      if (!df) throw new Error(`${id}: image ${c.image} is not one of ours`);
      out.push({ id, program, container: c, deployment: dep, set, env: { ...dockerfile(df).env, ...set } });
    }
  }
  return out;
}

const portOf = (c: z.infer<typeof Container>, port: string | number): number | undefined =>
  typeof port === 'number' ? port : c.ports?.find((p) => p.name === port)?.containerPort;

describe('infra/k8s', () => {
  it('kustomization.yaml lists every manifest, and every container is checked', () => {
    const { resources } = loadK8s();
    const files = readdirSync(k8sDir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect(resources.sort()).toEqual(files.sort());
    expect(k8sContainers().map((c) => c.id).sort()).toEqual(Object.keys(K8S_PROGRAMS).sort());
  });

  for (const id of Object.keys(K8S_PROGRAMS)) {
    it(`${id}: sets only variables its program reads, every required one, and they parse`, () => {
      const c = k8sContainers().find((x) => x.id === id)!;
      expect(unknownKeys(c.program, c.set)).toEqual([]);
      expect(missingRequired(c.program, c.env)).toEqual([]);
      expect(() => parseAs(c.program, c.env)).not.toThrow();
    });
  }

  it('the API and the worker use one store', () => {
    const stores = k8sContainers().map((c) => parseAs(c.program, c.env).s3);
    for (const s of stores) expect(s).toEqual(stores[0]);
  });

  it('the Secret ships placeholders the API refuses, so an unedited apply fails at start', () => {
    const secret = loadK8s().objects.map((o) => DataObject.safeParse(o)).find((d) => d.success && d.data.kind === 'Secret');
    const token = secret?.data?.stringData?.['ADMIN_TOKEN'];
    expect(token).toBeDefined();
    expect(() => parseApiEnv({ ADMIN_TOKEN: token })).toThrow(/ADMIN_TOKEN/);
    const keys = secret?.data?.stringData?.['API_KEYS'];
    expect(keys).toBeDefined();
    expect(() => parseApiEnv({ API_KEYS: keys })).toThrow(/API_KEYS/);
  });

  it('API: readiness on /readyz and liveness on /healthz at the port it listens on; the Service targets it', () => {
    const api = k8sContainers().find((c) => c.program === 'api')!;
    const port = parseApiEnv(api.env).PORT;
    expect(parseApiEnv(api.env).HOST).toBe('0.0.0.0');
    const r = api.container.readinessProbe!.httpGet;
    const l = api.container.livenessProbe!.httpGet;
    expect(r.path).toBe('/readyz');
    expect(l.path).toBe('/healthz');
    expect(portOf(api.container, r.port)).toBe(port);
    expect(portOf(api.container, l.port)).toBe(port);
    expect(api.container.ports?.map((p) => p.containerPort)).toEqual([port]);
    const services = loadK8s().objects.filter((o) => o['kind'] === 'Service').map((o) => Service.parse(o));
    const labels = (api.deployment.spec.template['metadata'] as { labels: Env }).labels;
    const svc = services.find((s) => Object.entries(s.spec.selector).every(([k, v]) => labels[k] === v));
    expect(svc, 'a Service selects the API pods').toBeDefined();
    expect(svc!.spec.ports.map((p) => portOf(api.container, p.targetPort))).toEqual([port]);
  });

  it('worker: GPU image with a GPU request, its dataset mounted, and time to snapshot on SIGTERM', () => {
    const w = k8sContainers().find((c) => c.program === 'worker')!;
    expect(K8S_IMAGES[w.container.image]).toBe('Dockerfile.gpu');
    expect(Number(w.container.resources?.limits?.['nvidia.com/gpu'])).toBeGreaterThanOrEqual(1);
    const req = w.container.resources?.requests?.['nvidia.com/gpu'];
    if (req !== undefined) expect(Number(req)).toBe(Number(w.container.resources?.limits?.['nvidia.com/gpu']));
    const fmnist = w.env['FMNIST_DIR'];
    expect(fmnist, 'the GPU image names its Fashion-MNIST directory').toBeDefined();
    const mount = w.container.volumeMounts?.find((m) => m.mountPath === fmnist);
    expect(mount, `${fmnist} is mounted`).toBeDefined();
    // Something fills that volume before the worker starts.
    const init = w.deployment.spec.template.spec.initContainers ?? [];
    expect(init.some((c) => c.volumeMounts?.some((m) => m.name === mount!.name))).toBe(true);
    for (const c of init) expect(c.env ?? []).toEqual([]);
    const grace = (w.deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30) * 1000;
    expect(grace).toBeGreaterThan(workerConfigFromEnv(w.env).shutdownTimeoutMs);
  });
});
