// The ONNX Runtime of browsers: onnxruntime-web (WASM; the bundles pick its WASM or WebGPU build).
// package.json's "imports" maps '#onnxruntime' here everywhere but Node.js.
import * as ort from 'onnxruntime-web';

export { ort };
export const native = false;
