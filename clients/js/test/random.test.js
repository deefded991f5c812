// The shuffling order is part of a paused round (training_state.js stores the generator's state
// and the epoch's order), so a faster permutation must draw exactly the same orders as before:
// these sequences were recorded from the first implementation.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SeededRandom } from '../src/random.js';

test('permutation draws the recorded orders for a seed, twice in a row', () => {
  const cases = [
    [0, 10, [3, 8, 6, 4, 5, 9, 7, 1, 0, 2], [7, 1, 4, 9, 3, 8, 6, 0, 2, 5], 2903413562],
    [11, 7, [0, 1, 4, 2, 5, 6, 3], [6, 2, 4, 1, 5, 3, 0], 503953287],
    [123456789, 12, [6, 9, 11, 0, 8, 4, 5, 2, 1, 7, 10, 3], [9, 11, 0, 7, 3, 2, 8, 10, 4, 1, 6, 5], 1763199011],
  ];
  for (const [seed, count, first, second, state] of cases) {
    const random = new SeededRandom(seed);
    assert.deepEqual(random.permutation(count), first, `seed ${seed}`);
    assert.deepEqual(random.permutation(count), second, `seed ${seed}, second epoch`);
    assert.equal(random.state, state);
  }
});

test('a large permutation is the recorded one and holds every index once', () => {
  const random = new SeededRandom(5);
  const order = random.permutation(100000);
  let hash = 0;
  for (const index of order) hash = (Math.imul(hash, 31) + index) | 0;
  assert.equal(hash, -2260188);
  assert.equal(random.state, 164363568);
  assert.ok(Array.isArray(order), 'a plain array: it is stored in JSON checkpoints as is');
  assert.equal(new Set(order).size, 100000);
});
