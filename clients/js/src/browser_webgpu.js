// Entry of the WebGPU bundle (dist/fedgrid.webgpu.js, global `fedgrid`): the same API, built on
// onnxruntime-web's WebGPU+WASM flavour (its JSEP WASM, ~27 MB, is served from /js/ort/ too).
// Plans run on WebGPU where the browser has it, else on WASM.

import { configureRuntime } from './runtime.js';

export * from './browser.js';

configureRuntime({ webgpu: true });
