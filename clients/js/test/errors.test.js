// Every code of the protocol's error table (generated from the protocol package) gives the class
// the table names, the same one the Python SDK raises (clients/python/tests/test_error_table.py).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import * as fedgrid from '../src/index.js';
import { ERROR_CODES, SDK_CODES, SDK_EXCEPTIONS } from '../src/protocol.generated.js';

const { ApiError, FedgridError, apiErrorFrom, sdkExceptionFor } = fedgrid;
const answer = (code, status) => ({ error: { code, message: `refused: ${code}`, status, details: { field: 'x' } } });

test('one exported class per SDK exception, with exactly that name, each an ApiError', () => {
  for (const name of SDK_EXCEPTIONS) {
    const Class = fedgrid[name];
    assert.equal(typeof Class, 'function', `no class ${name}`);
    assert.equal(Class.name, name);
    assert.ok(Class.prototype instanceof ApiError, `${name} is not an ApiError`);
    assert.equal(fedgrid.ERROR_CLASSES[name], Class);
  }
  assert.equal(fedgrid.NetworkUnreachable.name, 'NetworkUnreachable');
  assert.ok(fedgrid.NetworkUnreachable.prototype instanceof FedgridError);
});

test('every server code in the table gives the class the table names', () => {
  assert.ok(Object.keys(ERROR_CODES).length > 40);
  for (const [code, { status, exception }] of Object.entries(ERROR_CODES)) {
    const error = apiErrorFrom(answer(code, status), status);
    assert.equal(error.constructor, fedgrid[exception], `${code}: ${error.constructor.name}, the table says ${exception}`);
    assert.equal(error.name, exception);
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, code);
    assert.equal(error.status, status);
    assert.deepEqual(error.details, { field: 'x' });
    assert.equal(error.message, `refused: ${code}`);
    assert.equal(sdkExceptionFor(code, status), exception);
  }
});

test('every SDK-made code gives the class the table names', () => {
  assert.deepEqual(Object.keys(SDK_CODES).sort(), ['network_unreachable', 'unexpected_answer']);
  for (const [code, exception] of Object.entries(SDK_CODES)) {
    const error = apiErrorFrom(answer(code, 0), 0);
    assert.equal(error.constructor, fedgrid[exception], `${code}: ${error.constructor.name}, the table says ${exception}`);
    assert.equal(error.code, code);
  }
  assert.equal(new fedgrid.NetworkUnreachable('down').code, 'network_unreachable');
});

test('an unknown code goes by its status: 5xx Unavailable, anything else RequestInvalid', () => {
  for (const [status, exception] of [[500, 'Unavailable'], [503, 'Unavailable'], [599, 'Unavailable'], [400, 'RequestInvalid'], [404, 'RequestInvalid'], [409, 'RequestInvalid'], [499, 'RequestInvalid']]) {
    const error = apiErrorFrom(answer('from_a_newer_server', status), status);
    assert.equal(error.constructor, fedgrid[exception], `${status}`);
    assert.equal(error.code, 'from_a_newer_server');
  }
  // The body's status decides; the HTTP status stands in when the body has none.
  assert.ok(apiErrorFrom({ error: { code: 'from_a_newer_server', message: 'm' } }, 502) instanceof fedgrid.Unavailable);
});

test('the old names are the same classes', () => {
  assert.equal(fedgrid.CycleClosedError, fedgrid.AssignmentExpired);
  assert.equal(fedgrid.NetworkError, fedgrid.NetworkUnreachable);
  assert.equal(fedgrid.UnavailableError, fedgrid.Unavailable);
  assert.equal(fedgrid.RequestError, fedgrid.RequestInvalid);
  assert.ok(apiErrorFrom(answer('cycle_closed', 409), 409) instanceof fedgrid.CycleClosedError);
});

test('the generated table is frozen all the way down', () => {
  assert.ok(Object.isFrozen(ERROR_CODES) && Object.isFrozen(ERROR_CODES.cycle_closed) && Object.isFrozen(ERROR_CODES.cycle_closed.servers));
  assert.ok(Object.isFrozen(SDK_CODES) && Object.isFrozen(SDK_EXCEPTIONS));
  assert.throws(() => { 'use strict'; ERROR_CODES.cycle_closed.exception = 'RequestInvalid'; }, TypeError);
  assert.equal(fedgrid.ERROR_CODES, ERROR_CODES);
});
