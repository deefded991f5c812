// A Python SDK device in a child process (support/python_secagg_device.py), for the secure
// cycles that mix Python devices with JS ones in Node.js or in Chromium.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { PYTHON } from './node.mjs';

const DEVICE_SCRIPT = fileURLToPath(new URL('./python_secagg_device.py', import.meta.url));

/** Resolves when the device exits 0: `honest` (args: url, model, 'honest', diff output path)
 *  reports a seeded diff and writes it; `drop` shares its keys, then vanishes. */
export function runPythonDevice(...args) {
  return new Promise((resolve, reject) => {
    let output = '';
    const child = spawn(PYTHON, [DEVICE_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk) => { output += chunk; });
    child.stderr.on('data', (chunk) => { output += chunk; });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`python device (${args[2]}) exited with ${code}:\n${output}`))));
  });
}
