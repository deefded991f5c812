// For tests of graph rewrites that must not change a result's bits (packed_graph.test.js,
// loop_graph.test.js): a conformance plan's bytes and start, and tensor comparisons by bytes.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { parseSafetensors } from '../../src/index.js';
import { VECTORS } from './node.mjs';

export function planBytes(vector) { return readFileSync(`${VECTORS}/${vector}/plan.fgplan`); }

export function startOf(vector) { return parseSafetensors(readFileSync(`${VECTORS}/${vector}/start.safetensors`)).tensors; }

export function bits(array) { return Array.from(new Uint8Array(array.buffer, array.byteOffset, array.byteLength)); }

/** The same names in the same order, shapes, dtypes and bytes. */
export function assertSameTensors(actual, expected, what) {
  assert.deepEqual(Object.keys(actual), Object.keys(expected), `${what}: names`);
  for (const name of Object.keys(expected)) {
    assert.deepEqual(actual[name].shape, expected[name].shape, `${what}: ${name} shape`);
    assert.equal(actual[name].dtype, expected[name].dtype, `${what}: ${name} dtype`);
    assert.deepEqual(bits(actual[name].data), bits(expected[name].data), `${what}: ${name}`);
  }
}
