// Which ONNX Runtime runs the plans, and how it is set up. One place, so the browser bundle can
// point the WASM loader at the Node's /js/ort/ URLs before the first session is created.
// '#onnxruntime' (package.json "imports") is onnxruntime-node under Node.js when installed, and
// onnxruntime-web (WASM) otherwise.

import { native, ort } from '#onnxruntime';

let threads = 1;
let configured = false;
let preferWebGPU = false;

/**
 * Configure the ONNX Runtime once. `wasmPaths`: URL prefix of the ort-wasm-*.wasm/.mjs files
 * (browsers; Node.js finds them in node_modules). `numThreads` defaults to 1: devices train in
 * the background, and threads need cross-origin isolation in browsers. `webgpu: true` (set by the
 * WebGPU bundle, dist/fedgrid.webgpu.js) makes WebGPU the default where the browser has it.
 */
export function configureRuntime({ wasmPaths, numThreads = 1, webgpu } = {}) {
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

/** Session options every plan session gets: the native runtime's thread pools sized like the
 *  WASM one (`numThreads`, 1 by default), since devices train in the background. */
export function sessionDefaults() {
  if (!configured) configureRuntime();
  return native ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {};
}
