// The ONNX Runtime under Node.js: the native one (onnxruntime-node, an optional dependency) when
// it is installed and loads on this machine, since it trains 2-3x faster than WASM; else
// onnxruntime-web's WASM, which runs everywhere. FEDGRID_ONNXRUNTIME=web forces WASM (to compare
// the two, or to check what browsers will compute).
let loaded;
if (process.env.FEDGRID_ONNXRUNTIME !== 'web') {
  try {
    loaded = await import('onnxruntime-node');
  } catch {
    loaded = undefined; // not installed (optional), or no binary for this platform
  }
}

export const native = loaded !== undefined;
export const ort = loaded ?? await import('onnxruntime-web');
