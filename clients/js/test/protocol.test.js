// src/protocol.generated.js, types/protocol.generated.d.ts and the docs' error tables are generated
// from the protocol package (protocol/fedgrid_protocol) and committed, so the SDK builds without
// Python. This fails when one of them no longer matches the package; it needs Python to check
// (skipped without one), as protocol/tests/test_export.py does on the Python side.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const venv = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));
const python = process.env.PYTHON ?? (existsSync(venv) ? venv : 'python3');

test('the generated protocol files match the protocol package', (t) => {
  const run = spawnSync(python, ['-m', 'fedgrid_protocol.export', '--check'], {
    cwd: root,
    env: { ...process.env, PYTHONPATH: [`${root}protocol`, process.env.PYTHONPATH].filter(Boolean).join(':') },
    encoding: 'utf8',
  });
  if (run.error?.code === 'ENOENT') {
    t.skip(`no ${python} to run the protocol's exporter`);
    return;
  }
  assert.equal(run.status, 0, `${run.stdout}${run.stderr}\nThe generated files are stale: run \`make protocol\` (python -m fedgrid_protocol.export) and commit them.`);
});
