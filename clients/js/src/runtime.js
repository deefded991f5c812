// Where onnxruntime-web comes from, and how it is set up. One place, so the browser bundle can
// point the WASM loader at the Node's /js/ort/ URLs before the first session is created.

import * as ort from 'onnxruntime-web';

let configured = false;
let preferWebGPU = false;

/**
 * Configure ONNX Runtime Web once. `wasmPaths`: URL prefix of the ort-wasm-*.wasm/.mjs files
 * (browsers; Node.js finds them in node_modules). `numThreads` defaults to 1: devices train in
 * the background, and threads need cross-origin isolation in browsers. `webgpu: true` (set by the
 * WebGPU bundle, dist/fedgrid.webgpu.js) makes WebGPU the default where the browser has it.
 */
export function configureRuntime({ wasmPaths, numThreads = 1, webgpu } = {}) {
  if (wasmPaths) ort.env.wasm.wasmPaths = wasmPaths;
  if (webgpu !== undefined) preferWebGPU = webgpu;
  ort.env.wasm.numThreads = numThreads;
  ort.env.logLevel = 'error';
  configured = true;
}

export function runtime() {
  if (!configured) configureRuntime();
  return ort;
}

/** ONNX Runtime execution providers when the caller names none: WebGPU first when this build
 *  carries it and the browser has an adapter API, then WASM (always there; also the fallback). */
export function defaultExecutionProviders() {
  return preferWebGPU && typeof navigator !== 'undefined' && navigator.gpu ? ['webgpu', 'wasm'] : ['wasm'];
}
