import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { FormatError, Plan, parseSafetensors, writeSafetensors } from '../src/index.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const PYTHON = `${REPO}.venv/bin/python`;

test('write then parse keeps names, order, dtypes, shapes, values and metadata', () => {
  const bytes = writeSafetensors({
    w: { data: Float32Array.from([1.5, -2, 3e-8, 4, 5, 6]), shape: [2, 3] },
    labels: BigInt64Array.from([1n, 9n]),
    blob: new Uint8Array([7, 8, 9]),
    d: { data: Float64Array.from([Math.PI]), shape: [] },
  }, { envelope: '{"type":"x"}' });
  assert.equal(Number(new DataView(bytes.buffer).getBigUint64(0, true)) % 8, 0, 'header padded to 8 bytes');
  const { tensors, metadata } = parseSafetensors(bytes);
  assert.deepEqual(Object.keys(tensors), ['w', 'labels', 'blob', 'd']);
  assert.deepEqual(metadata, { envelope: '{"type":"x"}' });
  assert.deepEqual(tensors.w.shape, [2, 3]);
  assert.equal(tensors.w.dtype, 'F32');
  assert.deepEqual(Array.from(tensors.w.data), Array.from(Float32Array.from([1.5, -2, 3e-8, 4, 5, 6])));
  assert.deepEqual(Array.from(tensors.labels.data), [1n, 9n]);
  assert.deepEqual(Array.from(tensors.blob.data), [7, 8, 9]);
  assert.deepEqual(tensors.d.shape, []);
  assert.equal(tensors.d.data[0], Math.PI);
});

test('bytes written in JS decode in Python and the other way round, bit for bit', () => {
  const values = Float32Array.from({ length: 10 }, (_, i) => Math.fround(i / 7 - 0.3));
  const bytes = writeSafetensors({ a: { data: values, shape: [2, 5] }, n: Int32Array.from([-3, 4]) }, { k: 'v' });
  const script = `
import sys; from fedgrid_plans import tensors
data = sys.stdin.buffer.read()
arrays = tensors.decode(data)
assert tensors.decode_metadata(data) == {"k": "v"}
assert arrays["a"].shape == (2, 5) and arrays["n"].tolist() == [-3, 4]
sys.stdout.buffer.write(tensors.encode({"twice": arrays["a"] * 2}, metadata={"from": "python"}))`;
  const answer = execFileSync(PYTHON, ['-c', script], { input: bytes });
  const { tensors, metadata } = parseSafetensors(answer);
  assert.deepEqual(metadata, { from: 'python' });
  assert.deepEqual(tensors.twice.shape, [2, 5]);
  assert.deepEqual(Array.from(tensors.twice.data), Array.from(values, (v) => Math.fround(v * 2)));
});

test('malformed buffers are refused with FormatError, never a crash', () => {
  const good = writeSafetensors({ a: Float32Array.from([1, 2]) });
  const cases = {
    short: good.subarray(0, 5),
    'length past end': (() => { const b = good.slice(); new DataView(b.buffer).setBigUint64(0, 10n ** 6n, true); return b; })(),
    'trailing bytes': (() => { const b = new Uint8Array(good.length + 4); b.set(good); return b; })(),
    truncated: good.subarray(0, good.length - 1),
    'not json': (() => { const b = good.slice(); b[8] = 0x7b + 1; return b; })(),
  };
  for (const [label, bytes] of Object.entries(cases)) {
    assert.throws(() => parseSafetensors(bytes), FormatError, label);
  }
  const header = new TextEncoder().encode(JSON.stringify({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }));
  const bytes = new Uint8Array(8 + header.length + 8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(header, 8);
  assert.throws(() => parseSafetensors(bytes), /does not match dtype and shape/);
});

test('an unaligned data section still parses (copied instead of viewed)', () => {
  const header = new TextEncoder().encode(JSON.stringify({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
  const bytes = new Uint8Array(8 + header.length + 4);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(header, 8);
  new DataView(bytes.buffer).setFloat32(8 + header.length, 2.5, true);
  assert.equal(parseSafetensors(bytes).tensors.a.data[0], 2.5);
});

test('plan files parse, and a tampered graph fails the content hash', async () => {
  const bytes = readFileSync(`${REPO}plans/conformance/digits_mlp/plan.fgplan`);
  const plan = Plan.fromBytes(bytes);
  assert.equal(plan.name, 'digits_mlp');
  assert.deepEqual(plan.parameters.map((p) => p.name), ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']);
  await plan.verify();
  plan.graphs.train = plan.graphs.train.slice();
  plan.graphs.train[100] ^= 1;
  await assert.rejects(plan.verify(), FormatError);
  assert.throws(() => Plan.fromBytes(writeSafetensors({ x: new Uint8Array(1) })), /no manifest/);
  assert.throws(() => Plan.fromBytes(writeSafetensors({ 'graph/forward': new Uint8Array(1) }, { 'fedgrid.plan': '{"x":1}' })), /no training graph/);
});

test('the pure-JS SHA-256 (for pages without WebCrypto) agrees with WebCrypto', async () => {
  const { sha256Bytes } = await import('../src/sha256.js');
  const plan = readFileSync(`${REPO}plans/conformance/digits_mlp/plan.fgplan`);
  for (const bytes of [new Uint8Array(0), new TextEncoder().encode('abc'), new Uint8Array(55), new Uint8Array(56), new Uint8Array(64), plan]) {
    const digest = Buffer.from(await crypto.subtle.digest('SHA-256', bytes)).toString('hex');
    assert.equal(sha256Bytes(bytes), digest, `${bytes.length} bytes`);
  }
});
