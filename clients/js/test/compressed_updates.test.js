// Compressed updates: the JavaScript SDK writes the shared vector's bytes (the Python SDK's), its
// float16 rounding is IEEE round-to-nearest-even, and a real Node takes a device's int8 and
// float16 reports (and refuses another encoding with diff_encoding_mismatch).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Client, ReportRefused, encodeDiff, parseSafetensors, writeSafetensors } from '../src/index.js';
import { float32BitsToFloat16Bits, int8Quantize } from '../src/diff_encoding.js';
import { VECTORS, hostModel, retrieveModel, startNode, vectorData, waitForCheckpoint } from './support/node.mjs';

const VECTOR = join(VECTORS, 'diff_encoding');

for (const encoding of ['float16', 'int8']) {
  test(`the shared vector's ${encoding} encoding is written byte for byte`, () => {
    const diff = parseSafetensors(readFileSync(join(VECTOR, 'diff.safetensors'))).tensors;
    const expected = readFileSync(join(VECTOR, `${encoding}.safetensors`));
    const written = encodeDiff(diff, encoding);
    assert.equal(Buffer.compare(Buffer.from(written), expected), 0, `${encoding}: the bytes differ from the Python SDK's`);
  });
}

/** The value of binary16 bits (exact in a double). */
function halfValue(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

test('float32 -> float16 rounds to nearest, ties to even, over random bit patterns', () => {
  const bits = new Uint32Array(1);
  const value = new Float32Array(bits.buffer);
  let state = 12345;
  for (let i = 0; i < 200000; i += 1) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0; // a fixed LCG: the same cases every run
    // Exponents concentrated where float16 lives (2^-26 .. 2^17), any sign and mantissa.
    bits[0] = (state & 0x807fffff) | ((101 + (state >>> 23) % 43) << 23);
    const x = value[0];
    const half = float32BitsToFloat16Bits(bits[0]);
    const got = halfValue(half);
    const magnitude = Math.abs(x);
    if (magnitude >= 65520) { assert.equal(got, Math.sign(x) * Infinity, `${x}`); continue; }
    // The neighbours of the result: nothing is nearer, and a tie went to the even bits.
    const below = halfValue((half & 0x8000) | ((half & 0x7fff) - 1));
    const above = halfValue((half & 0x8000) | ((half & 0x7fff) + 1));
    const error = Math.abs(got - x);
    for (const other of [below, above]) {
      if (!Number.isFinite(other) || ((half & 0x7fff) === 0 && other === below)) continue;
      const otherError = Math.abs(other - x);
      assert.ok(error < otherError || (error === otherError && (half & 1) === 0), `${x}: ${got} vs ${other}`);
    }
  }
});

test('int8: ties to even, s = max|x| / 127, all zeros for s = 0', () => {
  assert.deepEqual(Array.from(int8Quantize(Float32Array.of(127, 0.5, 1.5, 2.5, -0.5, -2.5)).codes), [127, 0, 2, 2, 0, -2]);
  assert.deepEqual(int8Quantize(Float32Array.of(0, 0)), { codes: Int8Array.of(0, 0), scale: 0 });
  const { codes, scale } = int8Quantize(Float32Array.of(-0.254, 0.004));
  assert.equal(scale, Math.fround(Math.fround(0.254) / 127));
  assert.deepEqual(Array.from(codes), [-127, 2]);
  assert.throws(() => encodeDiff({ w: Float32Array.of(1) }, 'int4'), /update the fedgrid package/);
});

let node;
before(async () => { node = await startNode(); });
after(async () => { await node?.stop(); });

/** What the Node folds for a diff sent in `encoding`. */
function decoded(diff, encoding) {
  return Object.fromEntries(Object.entries(diff).map(([name, tensor]) => {
    if (encoding === 'int8') {
      const { codes, scale } = int8Quantize(tensor.data);
      return [name, Float32Array.from(codes, (q) => Math.fround(q * scale))];
    }
    const bits = new Uint32Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.length);
    return [name, Float32Array.from(bits, (b) => halfValue(float32BitsToFloat16Bits(b)))];
  }));
}

for (const [encoding, transport] of [['int8', 'http'], ['int8', 'websocket'], ['float16', 'http']]) {
  test(`a device's ${encoding} report over ${transport} is accepted and folded: next = old - decoded diff`, async () => {
    const name = `js-compressed-${encoding}-${transport}`;
    await hostModel(node, { name, clientConfig: { batch_size: 4, epochs: 1, diff_encoding: encoding }, serverConfig: { max_diffs: 1, min_diffs: 1, max_workers: 1 } });
    const client = new Client({ url: transport === 'http' ? node.url : node.wsUrl });
    const job = client.newJob({ modelName: name });
    const assignment = await job.request();
    assert.equal(assignment.clientConfig.diff_encoding, encoding);
    const { features, labels } = vectorData();
    const result = await job.train({ data: features, labels });
    assert.equal((await job.report(result)).status, 'success');
    await waitForCheckpoint(node, { name, number: 2 });
    const next = (await retrieveModel(node, { name, checkpoint: 2 })).tensors;
    const folded = decoded(result.diff, encoding);
    for (const [key, start] of Object.entries(assignment.parameters)) {
      for (let i = 0; i < start.data.length; i += 1) {
        const expected = Math.fround(start.data[i] - folded[key][i]);
        if (Math.abs(next[key].data[i] - expected) > 1e-7) assert.fail(`${key}[${i}]: ${next[key].data[i]} vs ${expected}`);
      }
    }
    client.close();
  });
}

test('a float32 report to an int8 model is refused with diff_encoding_mismatch', async () => {
  const name = 'js-compressed-mismatch';
  await hostModel(node, { name, clientConfig: { batch_size: 4, epochs: 1, diff_encoding: 'int8' }, serverConfig: { max_diffs: 1, min_diffs: 1, max_workers: 1 } });
  const client = new Client({ url: node.url, retries: 0 });
  const job = client.newJob({ modelName: name });
  await job.request();
  const { features, labels } = vectorData();
  const result = await job.train({ data: features, labels });
  // Bytes are sent as they are: an SDK that ignored the model's encoding.
  await assert.rejects(job.report({ ...result, diff: writeSafetensors(result.diff) }),
    (error) => error instanceof ReportRefused && error.code === 'diff_encoding_mismatch' && error.status === 400);
  assert.equal((await job.report(result)).status, 'success'); // the place was kept; int8 is taken
  client.close();
});
