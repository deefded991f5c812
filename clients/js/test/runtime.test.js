// Which ONNX Runtime the SDK runs plans on: native onnxruntime-node under Node.js when it is
// installed (`make js` installs it, an optional dependency), else onnxruntime-web's WASM — which
// must then compute the same steps, so the conformance vectors are replayed on both.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { defaultExecutionProviders, defaultThreadCount, runtimeInfo, runtimeName } from '../src/runtime.js';

const here = fileURLToPath(new URL('.', import.meta.url));

function childRuntime(env) {
  return execFileSync(process.execPath, ['--input-type=module', '-e',
    "import { runtimeName, defaultExecutionProviders } from './src/runtime.js'; console.log(runtimeName(), defaultExecutionProviders().join(','));"],
  { cwd: fileURLToPath(new URL('..', import.meta.url)), env: { ...process.env, ...env } }).toString().trim();
}

test('Node.js runs plans on the native runtime, on the CPU', () => {
  assert.equal(runtimeName(), 'onnxruntime-node');
  assert.deepEqual(defaultExecutionProviders(), ['cpu']);
});

test('Node.js devices run on one thread unless told otherwise (no cross-origin isolation to speak of)', () => {
  assert.equal(defaultThreadCount(), 1);
  assert.deepEqual(runtimeInfo(), { name: 'onnxruntime-node', executionProviders: ['cpu'], crossOriginIsolated: false, threads: 1 });
});

test('FEDGRID_ONNXRUNTIME=web selects the WASM runtime', () => {
  assert.equal(childRuntime({ FEDGRID_ONNXRUNTIME: 'web' }), 'onnxruntime-web wasm');
});

test('the conformance vectors pass on the WASM runtime under Node.js too', () => {
  // Throws (with the child's output) if any vector fails.
  execFileSync(process.execPath, ['--test', `${here}conformance.test.js`],
    { env: { ...process.env, FEDGRID_ONNXRUNTIME: 'web' }, stdio: 'pipe' });
});
