// Training steps per second of the same plan in Node.js (native onnxruntime-node, and
// onnxruntime-web WASM in a child process with FEDGRID_ONNXRUNTIME=web), in headless Chromium (the
// browser bundle) and in the Python executor (onnxruntime), all single-threaded, plus the browser
// bundle's size, and Chromium's multi-threaded WASM and WebGPU beside its one thread. Needs
// `npm run build` (for Chromium) and the repository's .venv.
//
// Python and Node.js (native) do the same work on both sides: `step` is PlanExecutor.step on one
// fixed batch (features float32, labels already in the plan's dtype: int64), feeding each step's
// parameters to the next; `round` is a local round (Python fedgrid_plans.executor.train, JS
// trainLocally: shuffled batches gathered from 8 copies of that batch, momentum/FedProx inputs as
// the plan has them, per-update callback), timed between updates. Both exclude the same warm-up
// (the first 5 steps) and report 1 / the 10th-percentile time of >= 5 ms samples. The two are
// measured alternately, `--rounds` times each, and each side's best is kept, so a load change on
// the shared machine does not favour whichever ran in the quieter moment.
//
//   node benchmarks/steps.mjs [--models digits_mlp,mcmahan_cnn] [--batch 32] [--seconds 3] [--rounds 2]

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpus, loadavg } from 'node:os';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

import { PlanExecutor, parseSafetensors, trainLocally } from '../src/index.js';
import { toTypedArray } from '../src/executor.js';
import { runtime, runtimeName, sessionDefaults } from '../src/runtime.js';
import { launchChromium } from '../test/support/browser.mjs';
import { PYTHON, REPO, VECTORS } from '../test/support/node.mjs';

const { values: args } = parseArgs({ options: {
  models: { type: 'string', default: 'digits_mlp,mcmahan_cnn' },
  batch: { type: 'string', default: '32' },
  seconds: { type: 'string', default: '3' },
  rounds: { type: 'string', default: '2' },
  // Internal: print Node.js steps/s of one model and exit (the WASM measurement's child process).
  'node-steps-of': { type: 'string' },
} });
const models = args.models.split(',');
const batch = Number(args.batch);
const seconds = Number(args.seconds);
const rounds = Number(args.rounds);
/** Copies of the batch in the local round's data set (the round shuffles and gathers batches). */
const COPIES = 8;
const WARMUP_STEPS = 5;
const DIST = fileURLToPath(new URL('../dist/', import.meta.url));

/** A deterministic batch for the plan (features in [0,1), labels 0..9). */
function makeBatch(featureSize) {
  const features = new Float32Array(batch * featureSize);
  let state = 12345;
  for (let i = 0; i < features.length; i += 1) { state = (state * 1103515245 + 12345) >>> 0; features[i] = (state >>> 8) / 2 ** 24; }
  const labels = Array.from({ length: batch }, (_, i) => i % 10);
  return { features, labels };
}

/** Runs inside Node.js and inside the page (the same function, serialised by playwright). */
async function timeSteps(api, planBytes, startBytes, features, labels, seconds) {
  const executor = await api.PlanExecutor.create(planBytes);
  // Labels in the plan's dtype, made once, as the Python side passes an int64 array (a page gets
  // them as plain numbers: converting those every step is work the Python side does not do).
  if (Array.isArray(labels)) {
    const dtype = executor.labelsInput.dtype;
    labels = dtype === 'int64' ? BigInt64Array.from(labels, (v) => BigInt(v)) : dtype === 'int32' ? Int32Array.from(labels) : Float32Array.from(labels);
  }
  let params = api.parseSafetensors(startBytes).tensors;
  const state = executor.usesOptimizerState ? executor.initialOptimizerState() : undefined;
  for (let i = 0; i < 5; i += 1) params = (await executor.step(params, features, labels, { optimizerState: state })).parameters;
  // A low percentile of the step times, not steps over a window: on a shared machine most
  // steps wait for other processes; the 10th percentile is what a step costs when it runs.
  // Browsers coarsen performance.now() (to 0.1 ms or more), so a sample runs steps for at least
  // 5 ms and its time is divided among them.
  const times = [];
  const started = performance.now();
  while (performance.now() - started < seconds * 1000 || times.length < 5) {
    const before = performance.now();
    let steps = 0;
    let elapsed = 0;
    while (elapsed < 5) {
      params = (await executor.step(params, features, labels, { optimizerState: state })).parameters;
      steps += 1;
      elapsed = performance.now() - before;
    }
    times.push(elapsed / steps);
  }
  times.sort((a, b) => a - b);
  return 1000 / times[Math.floor(times.length / 10)];
}

/** Python's steps/s: {step, round}, measured as timeSteps and nodeRoundStepsPerSecond do. */
function pythonStepsPerSecond(model, featureSize) {
  const script = `
import sys, time, numpy as np
from fedgrid_plans.executor import PlanExecutor, train
from fedgrid_plans import tensors
folder, batch, seconds, size, copies, warmup = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
executor = PlanExecutor(open(folder + "/plan.fgplan", "rb").read(), threads=1)
start = {k: np.array(v) for k, v in tensors.decode(open(folder + "/start.safetensors", "rb").read()).items()}
params = start
state = executor.initial_optimizer_state() if executor.uses_optimizer_state else None
s = 12345; f = np.empty(batch * size, np.float32)
for i in range(f.size):
    s = (s * 1103515245 + 12345) % 2**32; f[i] = (s >> 8) / 2**24
shape = [batch] + [int(d) for d in executor.plan.manifest["train"]["inputs"][0]["shape"][1:]]
features = f.reshape(shape); labels = np.arange(batch, dtype=np.int64) % 10
for _ in range(warmup): params = executor.step(params, features, labels, optimizer_state=state).parameters
times, started = [], time.perf_counter()
while time.perf_counter() - started < seconds or len(times) < 5:  # samples as in timeSteps
    before, steps, elapsed = time.perf_counter(), 0, 0.0
    while elapsed < 0.005:
        params = executor.step(params, features, labels, optimizer_state=state).parameters
        steps += 1
        elapsed = time.perf_counter() - before
    times.append(elapsed / steps)
step_rate = 1 / sorted(times)[len(times) // 10]

# A local round, timed between updates (the callback runs after each).
round_times, window = [], {"updates": 0, "since": None, "steps": 0, "started": None}
def on_batch(report):
    now = time.perf_counter()
    window["updates"] += 1
    if window["updates"] == warmup:
        window["since"], window["started"] = now, now
    elif window["updates"] > warmup:
        window["steps"] += 1
        if now - window["since"] >= 0.005:
            round_times.append((now - window["since"]) / window["steps"])
            window["since"], window["steps"] = now, 0
        if now - window["started"] >= seconds and len(round_times) >= 5:
            return False
    return True
train(executor, start, np.tile(features, [copies] + [1] * (features.ndim - 1)), np.tile(labels, copies),
      batch_size=batch, epochs=10**9, seed=0, on_batch=on_batch)
print(step_rate, 1 / sorted(round_times)[len(round_times) // 10])`;
  const output = execFileSync(PYTHON, ['-c', script, join(VECTORS, model), String(batch), String(seconds), String(featureSize), String(COPIES), String(WARMUP_STEPS)], { cwd: REPO });
  const [step, round] = output.toString().trim().split(/\s+/).map(Number);
  return { step, round };
}

function nodeStepsPerSecond(model) {
  const planBytes = readFileSync(join(VECTORS, model, 'plan.fgplan'));
  const startBytes = readFileSync(join(VECTORS, model, 'start.safetensors'));
  return PlanExecutor.create(planBytes).then(async (executor) => {
    const { featureSize } = executor;
    await executor.release();
    const { features, labels } = makeBatch(featureSize);
    // Labels in the plan's dtype, as the Python side passes an int64 array: converting a plain
    // array every step is work the Python side does not do.
    return timeSteps({ PlanExecutor, parseSafetensors }, planBytes, startBytes, features, toTypedArray(labels, executor.labelsInput.dtype), seconds);
  });
}

/** Steps/s within a local round (trainLocally), timed between updates like the Python side.
 *  Runs inside Node.js and inside the page (serialised by playwright, so it names nothing from
 *  this module). The round takes several full batches per session.run where the executor can
 *  (trainLocally's stepsPerRun): its callbacks then come in bursts, and a sample's steps are
 *  counted from callback to callback, so each sample still covers whole runs. */
async function timeRound(api, planBytes, startBytes, features, labels, { seconds, copies, batch, warmup }) {
  const executor = await api.PlanExecutor.create(planBytes);
  const start = api.parseSafetensors(startBytes).tensors;
  const allFeatures = new Float32Array(features.length * copies);
  for (let copy = 0; copy < copies; copy += 1) allFeatures.set(features, copy * features.length);
  const dtype = executor.labelsInput.dtype;
  const repeated = Array.from({ length: copies }, () => Array.from(labels, Number)).flat();
  const allLabels = dtype === 'int64' ? BigInt64Array.from(repeated, (v) => BigInt(v)) : dtype === 'int32' ? Int32Array.from(repeated) : Float32Array.from(repeated);
  const times = [];
  let updates = 0;
  let since;
  let started;
  let steps = 0;
  await api.trainLocally(executor, start, {
    features: allFeatures, labels: allLabels, batchSize: batch, epochs: 1e9, seed: 0,
    onBatch: () => {
      const now = performance.now();
      updates += 1;
      if (updates === warmup) {
        since = now;
        started = now;
      } else if (updates > warmup) {
        steps += 1;
        if (now - since >= 5) {
          times.push((now - since) / steps);
          since = now;
          steps = 0;
        }
        if (now - started >= seconds * 1000 && times.length >= 5) return false;
      }
      return true;
    },
  });
  await executor.release();
  times.sort((a, b) => a - b);
  return 1000 / times[Math.floor(times.length / 10)];
}

const ROUND_SETTINGS = { seconds, copies: COPIES, batch, warmup: WARMUP_STEPS };

async function nodeRoundStepsPerSecond(model) {
  const planBytes = readFileSync(join(VECTORS, model, 'plan.fgplan'));
  const executor = await PlanExecutor.create(planBytes);
  const { features, labels } = makeBatch(executor.featureSize);
  await executor.release();
  return timeRound({ PlanExecutor, parseSafetensors, trainLocally }, planBytes, readFileSync(join(VECTORS, model, 'start.safetensors')), features, labels, ROUND_SETTINGS);
}

/** Tensors in and out of the call-cost graphs: digits_mlp's training graph has 7 of each. */
const CALL_TENSORS = 7;
/** Floats per tensor: next to nothing, and about mcmahan_2nn's parameters (800 KB) in all. */
const CALL_SIZES = [4, 32768];

/** Microseconds per session.run of a graph that does almost nothing (CALL_TENSORS inputs of
 *  `size` floats, each negated into an output) in Python: what a call costs the runtime's binding
 *  (feeds in, outputs out), written by onnx to `path` for the Node.js side to run too. */
function pythonCallMicroseconds(path, size) {
  const script = `
import sys, time, numpy as np, onnx, onnxruntime
from onnx import TensorProto, helper
from fedgrid_plans.executor import session_options
path, count, seconds, size = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
inputs = [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [size]) for i in range(count)]
outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [size]) for i in range(count)]
graph = helper.make_graph([helper.make_node("Neg", [f"x{i}"], [f"y{i}"]) for i in range(count)], "calls", inputs, outputs)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.save(model, path)
session = onnxruntime.InferenceSession(path, session_options(1), providers=["CPUExecutionProvider"])
feeds = {f"x{i}": np.zeros(size, np.float32) for i in range(count)}
names = [f"y{i}" for i in range(count)]
for _ in range(5): session.run(names, feeds)
times, started = [], time.perf_counter()
while time.perf_counter() - started < seconds or len(times) < 5:
    before, calls, elapsed = time.perf_counter(), 0, 0.0
    while elapsed < 0.005:
        session.run(names, feeds)
        calls += 1
        elapsed = time.perf_counter() - before
    times.append(elapsed / calls)
print(sorted(times)[len(times) // 10] * 1e6)`;
  return Number(execFileSync(PYTHON, ['-c', script, path, String(CALL_TENSORS), String(seconds), String(size)], { cwd: REPO }).toString().trim());
}

/** The same graph's call in Node.js, through the SDK's runtime and session options. */
async function nodeCallMicroseconds(path, size) {
  const ort = runtime();
  const session = await ort.InferenceSession.create(path, { ...sessionDefaults(), graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  const feeds = {};
  for (let i = 0; i < CALL_TENSORS; i += 1) feeds[`x${i}`] = new ort.Tensor('float32', new Float32Array(size), [size]);
  for (let i = 0; i < 5; i += 1) await session.run(feeds);
  const times = [];
  const started = performance.now();
  while (performance.now() - started < seconds * 1000 || times.length < 5) {
    const before = performance.now();
    let calls = 0;
    let elapsed = 0;
    while (elapsed < 5) {
      await session.run(feeds);
      calls += 1;
      elapsed = performance.now() - before;
    }
    times.push(elapsed / calls);
  }
  await session.release();
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 10)] * 1000;
}

/** Best (lowest) call cost of each side for each of CALL_SIZES, measured alternately. */
async function callMicroseconds() {
  const folder = mkdtempSync(join(tmpdir(), 'fedgrid-bench-'));
  const costs = [];
  try {
    for (const size of CALL_SIZES) {
      const path = join(folder, `calls-${size}.onnx`);
      const best = { size, python: Infinity, node: Infinity };
      for (let i = 0; i < rounds; i += 1) {
        best.python = Math.min(best.python, pythonCallMicroseconds(path, size));
        best.node = Math.min(best.node, await nodeCallMicroseconds(path, size));
      }
      costs.push(best);
    }
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
  return costs;
}

/** Python and Node.js (native) alternately, `rounds` times; each side's best. */
async function pythonAndNode(model, featureSize) {
  const best = { python: { step: 0, round: 0 }, node: { step: 0, round: 0 } };
  for (let i = 0; i < rounds; i += 1) {
    const python = pythonStepsPerSecond(model, featureSize);
    const node = { step: await nodeStepsPerSecond(model), round: await nodeRoundStepsPerSecond(model) };
    for (const what of ['step', 'round']) {
      best.python[what] = Math.max(best.python[what], python[what]);
      best.node[what] = Math.max(best.node[what], node[what]);
    }
  }
  return best;
}

if (args['node-steps-of']) {
  console.log(await nodeStepsPerSecond(args['node-steps-of']));
  process.exit(0);
}

function wasmNodeStepsPerSecond(model) {
  const output = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--node-steps-of', model, '--batch', String(batch), '--seconds', String(seconds)],
    { env: { ...process.env, FEDGRID_ONNXRUNTIME: 'web' } });
  return Number(output.toString().trim());
}

// The browser: the bundle on three pages of one made-up origin, served by playwright (no Node
// process needed for timing). localhost, because browsers isolate and offer WebGPU only to secure
// contexts. '/' is a plain page (one WASM thread), '/isolated' carries the Node's COOP/COEP
// headers (apps/node/fedgrid_node/isolation.py) and runs on min(4, logical cores) threads — every
// core, not the SDK's default of half of them, which is 1 on a 2-core machine — and '/webgpu'
// loads the WebGPU bundle. --enable-unsafe-webgpu: headless Chromium offers no adapter
// without it.
const BENCH_ORIGIN = 'http://localhost:8765';
const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };
const PAGES = {
  '/': { bundle: 'fedgrid.js', headers: {} },
  '/isolated': { bundle: 'fedgrid.js', headers: ISOLATION },
  '/webgpu': { bundle: 'fedgrid.webgpu.js', headers: {} },
};
const browser = await launchChromium({ args: ['--enable-unsafe-webgpu'] });
// On the context, not a page: ONNX Runtime's worker threads fetch their script too.
await browser.context.route(`${BENCH_ORIGIN}/**`, (route) => {
  const path = new URL(route.request().url()).pathname;
  if (PAGES[path]) return route.fulfill({ status: 200, contentType: 'text/html', headers: PAGES[path].headers, body: `<!doctype html><script src="/js/${PAGES[path].bundle}"></script>` });
  const file = path.startsWith('/vectors/') ? join(VECTORS, path.slice('/vectors/'.length)) : join(DIST, path.slice('/js/'.length));
  const type = file.endsWith('.wasm') ? 'application/wasm' : file.endsWith('js') ? 'text/javascript' : 'application/octet-stream';
  // Scripts carry COEP as the Node sends it: ONNX Runtime's thread workers start only with it.
  const headers = type === 'text/javascript' ? { 'Cross-Origin-Embedder-Policy': 'require-corp' } : {};
  route.fulfill({ status: 200, contentType: type, headers, body: readFileSync(file) });
});
async function openPage(path) {
  const opened = await browser.newPage();
  await opened.goto(`${BENCH_ORIGIN}${path}`);
  await opened.waitForFunction(() => window.fedgrid !== undefined);
  return opened;
}
const page = await openPage('/');
const isolatedPage = await openPage('/isolated');
await isolatedPage.evaluate(() => window.fedgrid.configureRuntime({ numThreads: Math.min(4, navigator.hardwareConcurrency) }));
const webgpuPage = await openPage('/webgpu');
// The adapter the WebGPU bundle would train on, or why there is none (then no WebGPU figure).
const adapter = await webgpuPage.evaluate(async () => {
  if (!navigator.gpu) return { missing: 'navigator.gpu is undefined (no WebGPU in this Chromium)' };
  const found = await navigator.gpu.requestAdapter().catch((error) => error);
  if (!found || found instanceof Error) return { missing: `navigator.gpu.requestAdapter() gave ${found ? found.message : 'null'}: no adapter on this machine` };
  const { vendor, architecture, description } = found.info ?? {};
  return { name: [vendor, architecture, description].filter(Boolean).join(' '), fallback: Boolean(found.info?.isFallbackAdapter) };
});
/** Steps/s of timeRound in a page of the browser. */
function browserRoundStepsPerSecond(onPage, { model, features, labels }) {
  return onPage.evaluate(async ({ model, features, labels, settings, source }) => {
    const fetchBytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
    const run = new Function(`return (${source})`)();
    return run(window.fedgrid, await fetchBytes(`/vectors/${model}/plan.fgplan`), await fetchBytes(`/vectors/${model}/start.safetensors`), Float32Array.from(features), labels, settings);
  }, { model, features: Array.from(features), labels, settings: ROUND_SETTINGS, source: timeRound.toString() });
}

/** Steps/s of timeSteps in a page of the browser (the bundle's `fedgrid`). */
function browserStepsPerSecond(onPage, { model, features, labels }) {
  return onPage.evaluate(async ({ model, features, labels, seconds, source }) => {
    const fetchBytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());
    const run = new Function(`return (${source})`)();
    return run(window.fedgrid, await fetchBytes(`/vectors/${model}/plan.fgplan`), await fetchBytes(`/vectors/${model}/start.safetensors`), Float32Array.from(features), labels, seconds);
  }, { model, features: Array.from(features), labels, seconds, source: timeSteps.toString() });
}

const rows = [];
const browserRows = [];
for (const model of models) {
  const planBytes = readFileSync(join(VECTORS, model, 'plan.fgplan'));
  const startBytes = readFileSync(join(VECTORS, model, 'start.safetensors'));
  const executor = await PlanExecutor.create(planBytes);
  const { featureSize } = executor;
  await executor.release();
  const { features, labels } = makeBatch(featureSize);
  const { python: pythonRates, node: nodeRates } = await pythonAndNode(model, featureSize);
  const python = pythonRates.step;
  const node = nodeRates.step;
  const nodeWasm = wasmNodeStepsPerSecond(model);
  const chromium = await browserStepsPerSecond(page, { model, features, labels });
  const chromiumRound = await browserRoundStepsPerSecond(page, { model, features, labels });
  rows.push({ model, python, node, nodeWasm, chromium, pythonRound: pythonRates.round, nodeRound: nodeRates.round, chromiumRound });
  browserRows.push({
    model, python, chromium,
    threaded: await browserStepsPerSecond(isolatedPage, { model, features, labels }),
    // An adapter that cannot run the plan (a missing kernel, a lost device) is reported, not timed.
    webgpu: adapter.missing ? null : await browserStepsPerSecond(webgpuPage, { model, features, labels }).catch((error) => error),
  });
}
const browserRuntime = await isolatedPage.evaluate(() => ({ ...window.fedgrid.runtimeInfo(), cores: navigator.hardwareConcurrency }));
const webgpuRuntime = await webgpuPage.evaluate(() => window.fedgrid.runtimeInfo());
await browser.stop();

const fixed = (x) => x.toFixed(1).padStart(9);
console.log(`Training steps/s (1 / 10th-percentile step time), batch ${batch}, one thread each, ${seconds} s per measurement`);
console.log(`Node.js runtime: ${runtimeName()} (Node.js WASM: onnxruntime-web, for comparison)`);
console.log('model                Python   Node.js  Node.js WASM  Chromium   Node/Python  Node WASM/Python  Chromium/Python');
for (const r of rows) {
  console.log(`${r.model.padEnd(18)}${fixed(r.python)}${fixed(r.node)}${fixed(r.nodeWasm).padStart(14)}${fixed(r.chromium)}${(r.node / r.python).toFixed(2).padStart(13)}${(r.nodeWasm / r.python).toFixed(2).padStart(18)}${(r.chromium / r.python).toFixed(2).padStart(17)}`);
}
console.log(`\nA local round (Python train() vs. trainLocally() in Node.js on ${runtimeName()} and in Chromium on one WASM thread), steps/s between updates`);
console.log('model                Python   Node.js  Chromium   Node/Python  Chromium/Python');
for (const r of rows) console.log(`${r.model.padEnd(18)}${fixed(r.pythonRound)}${fixed(r.nodeRound)}${fixed(r.chromiumRound)}${(r.nodeRound / r.pythonRound).toFixed(2).padStart(13)}${(r.chromiumRound / r.pythonRound).toFixed(2).padStart(17)}`);
console.log(`Python and Node.js (both tables): the same plan, batch and start, labels in the plan's dtype on both sides; measured alternately, best of ${rounds}; the first ${WARMUP_STEPS} steps of each measurement excluded on both sides.`);
console.log(`\nOne session.run of a graph that only negates ${CALL_TENSORS} inputs into ${CALL_TENSORS} outputs (µs; the runtime bindings' cost of passing tensors in and out, which every step pays)`);
console.log('floats per tensor     Python   Node.js');
for (const c of await callMicroseconds()) console.log(`${String(c.size).padEnd(18)}${fixed(c.python)}${fixed(c.node)}`);
const bundle = readFileSync(join(DIST, 'fedgrid.js'));
const wasm = statSync(join(DIST, 'ort/ort-wasm-simd-threaded.wasm')).size;
const wasmGzip = gzipSync(readFileSync(join(DIST, 'ort/ort-wasm-simd-threaded.wasm'))).length;
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`\nBundle dist/fedgrid.js: ${kib(bundle.length)} (${kib(gzipSync(bundle).length)} gzip); ONNX Runtime WASM: ${kib(wasm)} (${kib(wasmGzip)} gzip)`);

// The browser's runtimes side by side: one WASM thread, the threads of a cross-origin isolated
// page, and WebGPU where Chromium has an adapter.
console.log(`\nChromium (the bundle), steps/s: one WASM thread; ${browserRuntime.threads} WASM threads on a cross-origin isolated page (crossOriginIsolated: ${browserRuntime.crossOriginIsolated}; navigator.hardwareConcurrency ${browserRuntime.cores}; this machine has ${cpus().length} cores, load average ${loadavg()[0].toFixed(1)}); WebGPU bundle`);
if (adapter.missing) console.log(`WebGPU: no figure, ${adapter.missing}`);
else console.log(`WebGPU adapter: ${adapter.name}${adapter.fallback ? ' (a fallback adapter: software, on the CPU, not a GPU)' : ''}; providers ${webgpuRuntime.executionProviders.join(', ')} (nodes without a WebGPU kernel run on WASM, ${webgpuRuntime.threads} thread)`);
console.log(`model              1 thread ${`${browserRuntime.threads} threads`.padStart(10)}    WebGPU   1 thread/Python ${`${browserRuntime.threads} threads/Python`.padStart(17)}  WebGPU/Python`);
for (const r of browserRows) {
  const timed = typeof r.webgpu === 'number';
  const webgpu = timed ? fixed(r.webgpu).padStart(10) : (r.webgpu === null ? 'no adapter' : 'failed').padStart(10);
  const webgpuRatio = timed ? (r.webgpu / r.python).toFixed(2) : '-';
  console.log(`${r.model.padEnd(18)}${fixed(r.chromium)}${fixed(r.threaded).padStart(11)}${webgpu}${(r.chromium / r.python).toFixed(2).padStart(18)}${(r.threaded / r.python).toFixed(2).padStart(18)}${webgpuRatio.padStart(15)}`);
  if (r.webgpu instanceof Error) console.log(`  WebGPU failed on ${r.model}: ${r.webgpu.message.split('\n')[0]}`);
}
