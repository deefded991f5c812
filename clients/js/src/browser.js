// Entry of the browser bundle (dist/fedgrid.js, global `fedgrid`; dist/fedgrid.mjs as a module).
// ONNX Runtime's WASM files are looked up in ort/ next to the bundle — the Node serves both under
// /js/ — so a page needs no CDN. Call fedgrid.configureRuntime({wasmPaths}) to use another place.

import { configureRuntime } from './runtime.js';

export * from './index.js';
export const version = '0.1.0';

const script = typeof document !== 'undefined' ? document.currentScript : null;
const here = script?.src || import.meta.url;
if (here) configureRuntime({ wasmPaths: new URL('ort/', here).href });
