// Where onnxruntime-web comes from, and how it is set up. One place, so the browser bundle can
// point the WASM loader at the Node's /js/ort/ URLs before the first session is created.

import * as ort from 'onnxruntime-web';

let configured = false;

/**
 * Configure ONNX Runtime Web once. `wasmPaths`: URL prefix of the ort-wasm-*.wasm/.mjs files
 * (browsers; Node.js finds them in node_modules). `numThreads` defaults to 1: devices train in
 * the background, and threads need cross-origin isolation in browsers.
 */
export function configureRuntime({ wasmPaths, numThreads = 1 } = {}) {
  if (wasmPaths) ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = numThreads;
  ort.env.logLevel = 'error';
  configured = true;
}

export function runtime() {
  if (!configured) configureRuntime();
  return ort;
}
