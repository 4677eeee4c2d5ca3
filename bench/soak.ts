/**
 * `npm run soak`: minutes of mixed traffic against a real `loraplex serve` child process, then a verdict.
 *
 *   npm run soak -- --minutes 10 [--model DIR] [--out DIR] [--adapters 200] [--concurrency 12] [--seed 1]
 *                   [--inject-fault adapter:s000|base|exit|hang]   (serve's test plumbing: check the checks)
 *   npm run soak -- --from docs/figures/soak/soak.json   (redraw the charts, print the tables, from an artifact)
 *
 * The server gets a store of many synthetic adapters (ranks 4–32, various targets) plus broken ones, small
 * --max-loras / --max-cpu-loras so adapters churn through the tiers, a short --lora-refresh-interval,
 * runtime updates into an uploads root, an admin key and an API key. The traffic (seeded: a run repeats
 * its mix) is completions and chat, streaming and not, over Zipf-popular adapters and the base, with
 * broken adapters, planned disconnects and bad requests now and then, and an admin lane that loads,
 * replaces, unloads and rewrites adapters. Every request has a client timeout, so a hang is counted.
 * The server's RSS and /metrics gauges are sampled throughout; at the end the soak waits (bounded) for
 * idle. It prints a table, writes <out>/soak.json and <out>/soak-rss.svg + soak-load.svg, and exits 1
 * when a criterion fails (see bench/soak/report.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDemo } from '../src/demo/demo-model.ts';
import { readModelConfig } from '../src/model/model-dir.ts';
import { ready, startServe } from './probes/serve-process.ts';
import { AdminLane } from './soak/admin-lane.ts';
import { loadChart, rssChart } from './soak/charts.ts';
import { type RawResponse, SoakClient, type SoakRequest } from './soak/http.ts';
import { classify, fails } from './soak/outcome.ts';
import { buildReport, isIdle, markdownReport, type RequestRecord, renderReport } from './soak/report.ts';
import { Sampler, type ServerGauges, scrapeGauges } from './soak/sampler.ts';
import { writeSoakStore } from './soak/store-writer.ts';
import { TrafficMix } from './soak/traffic.ts';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    model: { type: 'string' },
    out: { type: 'string', default: 'artifacts/soak' },
    adapters: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '12' },
    seed: { type: 'string', default: '1' },
    'max-loras': { type: 'string', default: '4' },
    'max-cpu-loras': { type: 'string', default: '16' },
    'max-lora-rank': { type: 'string', default: '32' },
    'refresh-interval': { type: 'string', default: '2' },
    'request-timeout': { type: 'string', default: '30' },
    'admin-every': { type: 'string', default: '1' },
    'sample-every': { type: 'string', default: '2' },
    'idle-timeout': { type: 'string', default: '30' },
    threads: { type: 'string' },
    'inject-fault': { type: 'string' },
    records: { type: 'boolean', default: false },
    from: { type: 'string' },
  },
});

if (args.from) {
  // Re-render the tables and charts from a saved artifact (docs quote the committed one).
  const saved = JSON.parse(await readFile(args.from, 'utf8'));
  const dir = dirname(args.from);
  await writeFile(join(dir, 'soak-rss.svg'), rssChart(saved.samples, `Server RSS — ${saved.title}`));
  await writeFile(join(dir, 'soak-load.svg'), loadChart(saved.samples, `Load — ${saved.title}`));
  console.log(renderReport(saved.report));
  console.log(`\n${markdownReport(saved.report)}`);
  process.exit(0);
}

const num = (name: keyof typeof args) => {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: expected a positive number, got '${args[name]}'`);
  return v;
};
const minutes = num('minutes');
const concurrency = Math.round(num('concurrency'));
const seed = Math.round(num('seed'));
const timeoutMs = num('request-timeout') * 1000;
const API_KEY = 'soak-api-key';
const ADMIN_KEY = 'soak-admin-key';
const BASE = 'soak-base';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const modelDir = args.model ?? (await ensureDemo()).modelDir;
const config = await readModelConfig(modelDir);
const root = await mkdtemp(join(tmpdir(), 'loraplex-soak-'));
console.error(`soak: writing ${args.adapters} adapters + broken ones under ${root}`);
const store = await writeSoakStore(root, config, { adapters: Math.round(num('adapters')), seed });

const flags = [
  ...(args.model ? ['--model', modelDir] : []),
  '--served-model-name',
  BASE,
  '--lora-dir',
  store.storeDir,
  '--max-loras',
  args['max-loras'] as string,
  '--max-cpu-loras',
  args['max-cpu-loras'] as string,
  '--max-lora-rank',
  args['max-lora-rank'] as string,
  '--lora-refresh-interval',
  args['refresh-interval'] as string,
  '--enable-lora-runtime-updates',
  '--allowed-lora-root',
  store.uploadsDir,
  '--admin-key',
  ADMIN_KEY,
  '--api-key',
  API_KEY,
  ...(args.threads ? ['--threads', args.threads] : []),
  // serve's hidden test plumbing: adapter:NAME (its requests' failures count as injected), base, exit, hang.
  ...(args['inject-fault'] ? ['--inject-fault', args['inject-fault']] : []),
];
const faultyAdapter = args['inject-fault']?.startsWith('adapter:') ? args['inject-fault'].slice(8) : undefined;
const server = startServe(flags);
let serverExit: { code: number | null; signal: string | null; atS: number } | null = null;
let t0 = performance.now();
server.child.on('exit', (code, signal) => {
  serverExit = { code, signal, atS: (performance.now() - t0) / 1000 };
});
await ready(server).catch(async (e) => {
  await server.stop();
  await rm(root, { recursive: true, force: true });
  throw e;
});
console.error(`soak: server up at ${server.url} (pid ${server.child.pid}); ${minutes} min of traffic, seed ${seed}`);

const client = new SoakClient(server.url, timeoutMs);
const admin = new AdminLane({ seed, config, store, adminKey: ADMIN_KEY, maxUploaded: 12 });
const mix = new TrafficMix({
  seed,
  base: BASE,
  storeAdapters: store.good,
  badAdapters: store.bad,
  apiKey: API_KEY,
  contextTokens: config.maxPositionEmbeddings,
  maxPromptBytes: 32 * config.maxPositionEmbeddings,
  faultyAdapter,
  uploaded: () => admin.uploaded(),
});

const records: RequestRecord[] = [];
// No answer may show where the server keeps its files, or what the symlinked secret holds.
const secrets = [root, 'SECRET-CONTENT', 'root:x:0'];
let inFlight = 0;
let printedFailures = 0;
let finishedSinceSample = 0;
t0 = performance.now();
const sampler = new Sampler(server.child.pid as number, server.url, t0, () => {
  const finished = finishedSinceSample;
  finishedSinceSample = 0;
  return { inFlight, finished };
});
await sampler.sample();
sampler.start(num('sample-every') * 1000);

const durationMs = minutes * 60_000;
const endAt = t0 + durationMs;
const alive = () => serverExit === null;

async function run(req: SoakRequest, alsoExpect: (raw: RawResponse) => number[] = () => []): Promise<RawResponse> {
  inFlight++;
  const raw = await client.send(req);
  inFlight--;
  finishedSinceSample++;
  const c = classify(req, raw, alsoExpect(raw), secrets);
  const record: RequestRecord = {
    ...c,
    kind: req.kind,
    model: req.model,
    startMs: raw.startMs - t0,
    endMs: raw.endMs - t0,
    ttftMs: raw.firstTokenMs === null ? null : raw.firstTokenMs - raw.startMs,
    status: raw.status,
    errorCode: raw.errorCode,
    errorMessage: raw.errorMessage,
  };
  if (fails(c)) {
    record.request = `POST ${req.path} ${req.body.length > 300 ? `${req.body.slice(0, 300)}…` : req.body}`;
    if (printedFailures++ < 40) {
      console.error(`soak: ${c.outcome} ${c.detail}: ${req.kind} ${req.model ?? ''} → ${raw.errorMessage ?? ''}`);
    }
  }
  records.push(record);
  return raw;
}

async function trafficWorker() {
  for (let i = 0; i < 1_000_000 && performance.now() < endAt && alive(); i++) {
    const req = mix.next();
    await run(req, (raw) => admin.alsoExpect(req.model, raw.startMs));
  }
}

async function adminWorker() {
  const rng = { x: seed };
  const everyMs = num('admin-every') * 1000;
  for (let i = 0; i < 100_000 && performance.now() < endAt && alive(); i++) {
    const step = await admin.next();
    const raw = await run(step.req);
    await step.after(raw.status);
    rng.x = (rng.x * 1103515245 + 12345) >>> 0;
    await sleep(everyMs * (0.5 + (rng.x % 1000) / 1000));
  }
}

const progress = setInterval(() => {
  const s = sampler.samples.at(-1);
  const failing = records.filter(fails).length;
  console.error(
    `soak: ${((performance.now() - t0) / 1000).toFixed(0)} s, ${records.length} requests, ${failing} failing, RSS ${s?.rssKb ? (s.rssKb / 1024).toFixed(0) : '?'} MiB, running ${s?.gauges?.running ?? '?'}`,
  );
}, 30_000);

await Promise.all([...Array.from({ length: concurrency }, trafficWorker), adminWorker()]);
clearInterval(progress);
const trafficS = (performance.now() - t0) / 1000;
console.error(`soak: traffic done after ${trafficS.toFixed(0)} s (${records.length} requests); waiting for idle`);

// Bounded wait for idle: every request has ended on the client side; the server should follow.
let end: ServerGauges | null = null;
let idleWaitS: number | null = null;
const idleStart = performance.now();
for (let i = 0; i < 1000 && alive() && performance.now() - idleStart < num('idle-timeout') * 1000; i++) {
  end = await scrapeGauges(server.url);
  if (isIdle(end)) {
    idleWaitS = (performance.now() - idleStart) / 1000;
    break;
  }
  await sleep(500);
}
await sampler.sample();
sampler.stop();

const report = buildReport({
  records,
  samples: sampler.samples,
  durationS: trafficS,
  end,
  idleWaitS,
  serverExit,
});

// Shut down (SIGTERM: drain, exit 0), bounded; then SIGKILL.
let shutdown = 'already exited';
if (alive()) {
  const since = performance.now();
  server.child.kill('SIGTERM');
  const exited = await Promise.race([server.exited(), sleep(40_000).then(() => null)]);
  shutdown = exited
    ? `SIGTERM → exit ${exited.code} after ${((performance.now() - since) / 1000).toFixed(1)} s`
    : 'SIGTERM → still running after 40 s (killed)';
  await server.stop();
}
client.close();

const git = (...a: string[]) => {
  try {
    return execFileSync('git', a, { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
};
const commit = git('rev-parse', '--short', 'HEAD');
// Uncommitted changes to the server's code (others' work in progress) ran too: say so.
const uncommitted = (git('status', '--porcelain', 'src', 'native') ?? '').split('\n').filter(Boolean).length;
const outDir = args.out as string;
await mkdir(outDir, { recursive: true });
const title = `${minutes} min soak, ${concurrency} in flight, ${store.good.length} adapters (${args.model ? 'model' : 'demo'})`;
const artifact = {
  schema: 'loraplex-soak/1',
  title,
  date: new Date().toISOString(),
  commit,
  uncommittedServerFiles: uncommitted,
  config: {
    minutes,
    model: args.model ?? 'demo',
    adapters: store.good.length,
    badAdapters: store.bad.map((b) => b.kind),
    concurrency,
    seed,
    injectFault: args['inject-fault'] ?? null,
    requestTimeoutS: timeoutMs / 1000,
    adminEveryS: num('admin-every'),
    sampleEveryS: num('sample-every'),
    serveFlags: flags.map((f) => f.replace(root, '<tmp>')),
  },
  shutdown,
  report,
  samples: sampler.samples,
  ...(args.records ? { records } : {}),
};
await writeFile(join(outDir, 'soak.json'), `${JSON.stringify(artifact, null, 1)}\n`);
await writeFile(join(outDir, 'soak-rss.svg'), rssChart(sampler.samples, `Server RSS — ${title}`));
await writeFile(join(outDir, 'soak-load.svg'), loadChart(sampler.samples, `Load — ${title}`));
await writeFile(join(outDir, 'server.log'), server.log().slice(-4_000_000));
await rm(root, { recursive: true, force: true });

console.log(renderReport(report));
console.log(`\n${markdownReport(report)}\n`);
console.log(`shutdown: ${shutdown}`);
console.log(`artifacts: ${join(outDir, 'soak.json')}, soak-rss.svg, soak-load.svg, server.log`);
process.exit(report.pass ? 0 : 1);
