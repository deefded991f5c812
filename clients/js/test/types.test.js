// The hand-written declarations name exactly what the package exports at run time.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import * as fedgrid from '../src/index.js';

test('types/index.d.ts declares every runtime export and nothing else', () => {
  const declarations = readFileSync(new URL('../types/index.d.ts', import.meta.url), 'utf8');
  const declared = [...declarations.matchAll(/^export (?:declare )?(?:class|function|const) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, Object.keys(fedgrid).sort());
});
