// npm run build: the browser bundles and ONNX Runtime's WASM into dist/, plus the example data.
//   dist/fedgrid.js    one <script> tag, global `fedgrid` (IIFE)
//   dist/fedgrid.mjs   the same as an ES module
//   dist/fedgrid.webgpu.js  the same on ONNX Runtime's WebGPU+WASM build (WebGPU where available)
//   dist/ort/          ort-wasm-simd-threaded.{wasm,mjs} (never committed; copied from node_modules)
//   dist/examples/     the example page and its digits data
// The Node serves dist/ at /js/ (apps/node/fedgrid_node/browser.py).

import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'ort'), { recursive: true });
mkdirSync(join(dist, 'examples'), { recursive: true });

const common = {
  entryPoints: [join(root, 'src/browser.js')],
  bundle: true,
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  // Class and function names survive minification: error classes set `name` from their class
  // (`new.target.name`), and `err.name` / `constructor.name` must say `AssignmentExpired`, not `Ve`.
  keepNames: true,
  legalComments: 'none',
  // Browsers have WebSocket; `ws` is only imported under Node.js.
  external: ['ws'],
  // The WASM-only build of onnxruntime-web (the default one also carries WebGPU/WebNN).
  alias: { 'onnxruntime-web': 'onnxruntime-web/wasm' },
  logLevel: 'warning',
  logOverride: { 'empty-import-meta': 'silent' },
};
await build({ ...common, format: 'iife', globalName: 'fedgrid', outfile: join(dist, 'fedgrid.js') });
await build({ ...common, format: 'esm', outfile: join(dist, 'fedgrid.mjs') });
// WebGPU flavour: ONNX Runtime's WebGPU+WASM build, opt-in because its WASM is twice the size.
await build({
  ...common,
  entryPoints: [join(root, 'src/browser_webgpu.js')],
  alias: { 'onnxruntime-web': 'onnxruntime-web/webgpu' },
  format: 'iife',
  globalName: 'fedgrid',
  outfile: join(dist, 'fedgrid.webgpu.js'),
});

const require = createRequire(import.meta.url);
for (const file of ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.asyncify.wasm', 'ort-wasm-simd-threaded.asyncify.mjs']) {
  copyFileSync(require.resolve(`onnxruntime-web/${file}`), join(dist, 'ort', file));
}
for (const file of ['browser-device.html', 'browser-device.js', 'digits.safetensors']) {
  copyFileSync(join(root, 'examples', file), join(dist, 'examples', file));
}
const kib = (file) => (statSync(join(dist, file)).size / 1024).toFixed(1);
console.log(`dist/fedgrid.js ${kib('fedgrid.js')} KiB, dist/fedgrid.mjs ${kib('fedgrid.mjs')} KiB, dist/fedgrid.webgpu.js ${kib('fedgrid.webgpu.js')} KiB, dist/ort/ort-wasm-simd-threaded.wasm ${kib('ort/ort-wasm-simd-threaded.wasm')} KiB, dist/ort/ort-wasm-simd-threaded.asyncify.wasm ${kib('ort/ort-wasm-simd-threaded.asyncify.wasm')} KiB`);
