// The plan file: ONNX graphs as 1-D U8 tensors "graph/<name>" and the JSON manifest in
// __metadata__["fedgrid.plan"], in one safetensors container (plans/fedgrid_plans/plan_file.py).

import { FormatError } from './errors.js';
import { parseSafetensors } from './safetensors.js';
import { sha256Hex } from './sha256.js';

export const PLAN_METADATA_KEY = 'fedgrid.plan';
const GRAPH_PREFIX = 'graph/';

/** A parsed plan: `manifest` (object) and `graphs` ({train, forward?, average?}: Uint8Array). */
export class Plan {
  constructor(manifest, graphs) {
    this.manifest = manifest;
    this.graphs = graphs;
  }

  get name() { return String(this.manifest.name ?? ''); }

  get contentHash() { return String(this.manifest.content_hash ?? ''); }

  /** Parameter specs {name, dtype, shape} in checkpoint order. */
  get parameters() { return [...(this.manifest.parameters ?? [])]; }

  /** Parse plan-file bytes; throws FormatError when they are not a plan file. */
  static fromBytes(bytes) {
    let parsed;
    try {
      parsed = parseSafetensors(bytes);
    } catch (error) {
      throw new FormatError(`plan file is not a valid safetensors container: ${error.message}`);
    }
    const text = parsed.metadata[PLAN_METADATA_KEY];
    if (text === undefined) throw new FormatError(`plan file has no manifest (__metadata__["${PLAN_METADATA_KEY}"])`);
    let manifest;
    try {
      manifest = JSON.parse(text);
    } catch (error) {
      throw new FormatError(`plan manifest is not JSON: ${error.message}`);
    }
    if (manifest === null || typeof manifest !== 'object' || Array.isArray(manifest)) {
      throw new FormatError('plan manifest is not a JSON object');
    }
    const graphs = {};
    for (const [tensorName, tensor] of Object.entries(parsed.tensors)) {
      if (!tensorName.startsWith(GRAPH_PREFIX)) throw new FormatError(`plan file holds an unexpected tensor '${tensorName}'`);
      if (tensor.dtype !== 'U8' || tensor.shape.length !== 1) throw new FormatError(`plan graph '${tensorName}' must be a 1-D U8 tensor`);
      graphs[tensorName.slice(GRAPH_PREFIX.length)] = tensor.data;
    }
    if (!graphs.train) throw new FormatError("plan file has no training graph (tensor 'graph/train')");
    if (!manifest.train?.inputs || !manifest.train?.outputs || !manifest.parameters) {
      throw new FormatError('plan manifest lacks train.inputs, train.outputs or parameters');
    }
    return new Plan(manifest, graphs);
  }

  /** "sha256:" + sha256 of the lines "<graph> <sha256 hex>\n" sorted by graph name (SPEC). */
  async computeContentHash() {
    let lines = '';
    for (const name of Object.keys(this.graphs).sort()) lines += `${name} ${await sha256Hex(this.graphs[name])}\n`;
    return `sha256:${await sha256Hex(new TextEncoder().encode(lines))}`;
  }

  /** Throw FormatError unless the graphs hash to the manifest's content_hash (a corrupted or
   *  tampered download would otherwise train silently). */
  async verify(expectedHash = this.contentHash) {
    const actual = await this.computeContentHash();
    if (actual !== expectedHash) {
      throw new FormatError(`plan content hash ${actual} does not match ${expectedHash}; download the plan again`);
    }
    return actual;
  }
}
