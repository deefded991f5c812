// A paused local round as a JSON-able object (syft.js's PlanTrainerCheckpoint, modernised): the
// tensors (start, current and optimizer state) travel as one base64 safetensors blob, everything
// else as plain numbers, so the object survives JSON.stringify, localStorage or IndexedDB.

import { FedgridError, FormatError } from './errors.js';
import { SeededRandom } from './random.js';
import { parseSafetensors, writeSafetensors } from './safetensors.js';

export const TRAINING_STATE_FORMAT = 'fedgrid.training-state';

export function bytesToBase64(bytes) {
  let binary = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) binary += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  return btoa(binary);
}

export function base64ToBytes(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The run's state as a JSON-able object (see trainLocally). */
export function encodeTrainingState(run, planHash) {
  const tensors = {};
  for (const [group, map] of [['start', run.start], ['current', run.current], ['state', run.optimizerState ?? {}]]) {
    for (const [name, tensor] of Object.entries(map)) tensors[`${group}/${name}`] = { dtype: 'F32', shape: tensor.shape, data: Float32Array.from(tensor.data) };
  }
  return {
    format: TRAINING_STATE_FORMAT,
    version: 1,
    planHash,
    settings: { ...run.settings },
    epoch: run.epoch,
    position: run.position,
    order: run.order ? [...run.order] : null,
    randomState: run.random.state,
    updates: run.updates,
    samples: run.samples,
    seen: bytesToBase64(run.seen),
    weightedLoss: run.weightedLoss,
    weightedMetrics: { ...run.weightedMetrics },
    losses: [...run.losses],
    hasOptimizerState: run.optimizerState !== null,
    tensors: bytesToBase64(writeSafetensors(tensors)),
  };
}

/** Rebuild a run from encodeTrainingState's object; refuses another plan or another data size. */
export function decodeTrainingState(saved, planHash, count) {
  if (!saved || saved.format !== TRAINING_STATE_FORMAT || saved.version !== 1) {
    throw new FormatError('resumeFrom is not a Fedgrid training checkpoint (format fedgrid.training-state, version 1)');
  }
  if (saved.planHash !== planHash) {
    throw new FedgridError(`the checkpoint was made with plan ${saved.planHash}, not ${planHash}; start a new round instead`);
  }
  const seen = base64ToBytes(saved.seen);
  if (seen.length !== count) {
    throw new FedgridError(`the checkpoint was made on ${seen.length} examples, but ${count} were given; resume with the same data`);
  }
  const { tensors } = parseSafetensors(base64ToBytes(saved.tensors));
  const groups = { start: {}, current: {}, state: {} };
  for (const [key, tensor] of Object.entries(tensors)) {
    const slash = key.indexOf('/');
    groups[key.slice(0, slash)][key.slice(slash + 1)] = { dtype: 'F32', shape: tensor.shape, data: Float32Array.from(tensor.data) };
  }
  const random = new SeededRandom(0);
  random.state = saved.randomState >>> 0;
  return {
    start: groups.start,
    current: groups.current,
    optimizerState: saved.hasOptimizerState ? groups.state : null,
    random,
    epoch: saved.epoch,
    position: saved.position,
    order: saved.order,
    updates: saved.updates,
    samples: saved.samples,
    seen,
    weightedLoss: saved.weightedLoss,
    weightedMetrics: { ...saved.weightedMetrics },
    losses: [...saved.losses],
    settings: { ...saved.settings },
  };
}
