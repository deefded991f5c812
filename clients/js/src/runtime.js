// Which ONNX Runtime runs the plans, and how it is set up. One place, so the browser bundle can
// point the WASM loader at the Node's /js/ort/ URLs before the first session is created.
// '#onnxruntime' (package.json "imports") is onnxruntime-node under Node.js when installed, and
// onnxruntime-web (WASM) otherwise.

import { native, ort } from '#onnxruntime';

let threads = 1;
let configured = false;
let preferWebGPU = false;

// By default a device trains on half its logical cores, at most four (ONNX Runtime's own default
// on isolated pages): it trains in the background of whatever else the phone or laptop does, half
// the logical cores are often the physical ones (SMT), and the page's own thread keeps a core. On
// a busy 2-core machine a second thread made steps slower, not faster (docs/sdk-js.md,
// "Performance"), so 2-core devices keep one.
const MAX_DEFAULT_THREADS = 4;

/** Whether this page or worker may run ONNX Runtime's multi-threaded WASM: it shares memory
 *  between workers (SharedArrayBuffer), which browsers give only to cross-origin isolated pages. */
export function threadsAvailable() {
  return !native && globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined';
}

/** `numThreads` when the caller gives none: min(4, ceil(logical cores / 2)) where threads are
 *  available, else 1 (native Node.js included, where devices share the machine with their app). */
export function defaultThreadCount() {
  if (!threadsAvailable()) return 1;
  const cores = Number(globalThis.navigator?.hardwareConcurrency) || 1;
  return Math.max(1, Math.min(MAX_DEFAULT_THREADS, Math.ceil(cores / 2)));
}

/**
 * Configure the ONNX Runtime, before the first plan runs (its WASM reads the thread count once).
 * `wasmPaths`: URL prefix of the ort-wasm-*.wasm/.mjs files (browsers; Node.js finds them in
 * node_modules). `numThreads` defaults to defaultThreadCount(): several on a cross-origin isolated
 * page, else 1; give 1 to keep a device to one core. `webgpu: true` (set by the WebGPU bundle,
 * dist/fedgrid.webgpu.js) makes WebGPU the default where the browser has it.
 */
export function configureRuntime({ wasmPaths, numThreads = defaultThreadCount(), webgpu } = {}) {
  threads = numThreads;
  if (!native) {
    if (wasmPaths) ort.env.wasm.wasmPaths = wasmPaths;
    ort.env.wasm.numThreads = numThreads;
  }
  if (webgpu !== undefined) preferWebGPU = webgpu;
  ort.env.logLevel = 'error';
  configured = true;
}

export function runtime() {
  if (!configured) configureRuntime();
  return ort;
}

/** ONNX Runtime execution providers when the caller names none: the CPU under the native
 *  runtime; else WebGPU first when this build carries it and the browser has an adapter API, then
 *  WASM (always there; also the fallback). */
export function defaultExecutionProviders() {
  if (native) return ['cpu'];
  return preferWebGPU && typeof navigator !== 'undefined' && navigator.gpu ? ['webgpu', 'wasm'] : ['wasm'];
}

/** 'onnxruntime-node' (native, Node.js) or 'onnxruntime-web' (WASM, or WebGPU in its bundle). */
export function runtimeName() {
  return native ? 'onnxruntime-node' : 'onnxruntime-web';
}

/** What runs the plans: the runtime, its execution providers, whether the page is cross-origin
 *  isolated and the threads. Before the first plan these are the configured threads; once ONNX
 *  Runtime's WASM has started, the ones it runs (it falls back to 1 where threads are refused). */
export function runtimeInfo() {
  if (!configured) configureRuntime();
  return {
    name: runtimeName(),
    executionProviders: defaultExecutionProviders(),
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    threads: native ? threads : ort.env.wasm.numThreads,
  };
}

/** Session options every plan session gets: the native runtime's thread pools sized like the
 *  WASM one (`numThreads`, 1 by default under Node.js), since devices train in the background. */
export function sessionDefaults() {
  if (!configured) configureRuntime();
  return native ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {};
}
