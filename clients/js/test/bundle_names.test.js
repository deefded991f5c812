// The browser bundles keep the SDK's class names: an error caught in a page says
// `AssignmentExpired`, not the minifier's `Ve`. Needs `npm run build` first.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

import { SDK_EXCEPTIONS } from '../src/index.js';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));

/** The IIFE bundle's global `fedgrid`, evaluated in a fresh context (nothing of the page runs). */
function loadBundle(file) {
  assert.ok(existsSync(DIST + file), 'run `npm run build` before this test');
  const context = vm.createContext({ console, URL, TextEncoder, TextDecoder, setTimeout, clearTimeout });
  vm.runInContext(`${readFileSync(DIST + file, 'utf8')}\n;globalThis.fedgrid = fedgrid;`, context);
  return context.fedgrid;
}

for (const file of ['fedgrid.js', 'fedgrid.webgpu.js']) {
  test(`${file}: errors carry their real class names`, () => {
    const fedgrid = loadBundle(file);
    for (const name of [...SDK_EXCEPTIONS, 'FedgridError', 'ApiError', 'NetworkUnreachable', 'FormatError', 'TrainingStoppedError']) {
      assert.equal(fedgrid[name]?.name, name, `the bundle's ${name} class`);
    }
    const expired = new fedgrid.AssignmentExpired({ code: 'assignment_expired', message: 'the lease ran out', status: 410 });
    assert.equal(expired.name, 'AssignmentExpired');
    assert.equal(expired.constructor.name, 'AssignmentExpired');
    assert.match(String(expired), /^AssignmentExpired: the lease ran out$/);
    const unreachable = new fedgrid.NetworkUnreachable('no route');
    assert.equal(unreachable.name, 'NetworkUnreachable');
    assert.equal(fedgrid.Client.name, 'Client');
    assert.equal(fedgrid.Job.name, 'Job');
  });
}
