// Rewrite a plan's training graph so that a step passes a few flat tensors instead of one per
// parameter. Every tensor that crosses session.run costs the runtime's binding about 1-2 µs
// whatever its size (onnxruntime-node reads each input's fields through N-API and builds each
// output as a new ArrayBuffer, Tensor and name; onnxruntime-web copies each into and out of the
// WASM heap), and a small model's step moves 7-15 of them: a fifth of digits_mlp's step.
//
// The rewritten graph takes each role's inputs (parameters, optimizer state, global parameters) as
// one float32 vector, split back into the original tensors inside the graph, and returns its
// float32 outputs (updated parameters, updated state, loss, float metrics) concatenated into one
// vector. Split, Reshape and Concat only move values, so the training arithmetic is the plan's own
// and its results are bit for bit those of the unmodified graph (test/packed_graph.test.js). The
// plan's bytes, hash and manifest stay as they are: this is how the executor runs them.
//
// Only the few protobuf fields involved are read or written (src/onnx_proto.js); everything else
// in the model is copied through byte for byte.

import {
  FLOAT, GRAPH_INPUT, GRAPH_OUTPUT, MODEL_GRAPH, concatBytes, defaultOpset, fieldBytes, int64Initializer, intAttribute,
  lengthField, node, readFields, stringOf, valueInfo,
} from './onnx_proto.js';

/** Inputs packed into one vector per role, in this order in the layout. */
export const PACKED_INPUT_ROLES = ['parameter', 'optimizer_state', 'global_parameter'];
const PACKED_OUTPUT_ROLES = new Set(['updated_parameter', 'updated_optimizer_state', 'loss', 'metric']);
const UPDATED_ROLE = { parameter: 'updated_parameter', optimizer_state: 'updated_optimizer_state' };
/** Split takes its sizes as an input (not an attribute) from opset 13 on. */
const MIN_OPSET = 13;
const PREFIX = 'fedgrid.packed/';

function product(shape) { return shape.reduce((a, b) => a * b, 1); }

function isStaticShape(shape) { return Array.isArray(shape) && shape.every((d) => Number.isInteger(d) && d >= 0); }

/**
 * The packed form of a training graph, or null where packing does not apply (an opset before 13,
 * inputs of another dtype than float32, fewer than two tensors to pack).
 * @param {Uint8Array} graph  the plan's training graph (ONNX ModelProto bytes)
 * @param {{inputs: object[], outputs: object[]}} section  the manifest's `train` section
 * @returns {null | {bytes: Uint8Array, inputs: {name: string, role: string, what: string,
 *   length: number, dims: number[], entries: {name: string, parameter: string, shape: number[],
 *   offset: number, length: number}[]}[],
 *   output: {name: string, length: number, entries: {entry: object, offset: number, length: number}[]},
 *   fetches: string[]}}  `fetches`: the packed output, then the outputs left as they were
 */
export function packTrainingGraph(graph, section) {
  const inputs = [];
  for (const role of PACKED_INPUT_ROLES) {
    const entries = section.inputs.filter((entry) => entry.role === role);
    if (!entries.length) continue;
    if (!entries.every((entry) => entry.dtype === 'float32' && isStaticShape(entry.shape))) return null;
    let offset = 0;
    const layout = entries.map((entry) => {
      const length = product(entry.shape);
      const placed = { name: entry.name, parameter: entry.parameter, shape: entry.shape, offset, length };
      offset += length;
      return placed;
    });
    inputs.push({ name: `${PREFIX}${role}`, role, what: role.replace('_', ' '), length: offset, dims: [offset], entries: layout });
  }
  const packable = section.outputs.filter((entry) => PACKED_OUTPUT_ROLES.has(entry.role) && entry.dtype === 'float32' && isStaticShape(entry.shape));
  // Updated parameters, then updated state, in their inputs' order, then the rest: a step's packed
  // output then holds the next step's packed inputs as they are, to be fed back without a copy.
  const packedOutputs = [];
  for (const input of inputs) {
    const role = UPDATED_ROLE[input.role];
    for (const entry of role ? input.entries : []) {
      const updated = packable.find((candidate) => candidate.role === role && candidate.parameter === entry.parameter);
      if (updated && !packedOutputs.includes(updated)) packedOutputs.push(updated);
    }
  }
  for (const entry of packable) if (!packedOutputs.includes(entry)) packedOutputs.push(entry);
  let offset = 0;
  const outputEntries = packedOutputs.map((entry) => {
    const length = product(entry.shape);
    const placed = { entry, offset, length };
    offset += length;
    return placed;
  });
  const output = { name: `${PREFIX}outputs`, length: offset, entries: outputEntries };
  const packedTensors = inputs.reduce((sum, input) => sum + input.entries.length, 0) + outputEntries.length;
  if (packedTensors - inputs.length - 1 < 2) return null;
  const taken = new Set([...section.inputs, ...section.outputs].map((entry) => entry.name));
  if ([...inputs.map((input) => input.name), output.name].some((name) => taken.has(name))) return null;

  const modelFields = readFields(graph);
  if (defaultOpset(modelFields) < MIN_OPSET) return null;
  const graphField = modelFields.find((field) => field.number === MODEL_GRAPH && field.wire === 2);
  if (!graphField) return null;
  const replacedInputs = new Set(inputs.flatMap((input) => input.entries.map((entry) => entry.name)));

  const before = []; // nodes that split the packed inputs, ahead of the plan's nodes
  const after = []; // the flattening and concatenation of the outputs, and the new graph entries
  // Vectors (biases) need no Reshape either way: each node, however small, adds to every step.
  const isVector = (shape) => shape.length === 1;
  for (const input of inputs) {
    const pieces = input.entries.map((entry) => (isVector(entry.shape) ? entry.name : `${input.name}/flat/${entry.name}`));
    const sizes = `${input.name}/sizes`;
    after.push(int64Initializer(sizes, input.entries.map((entry) => entry.length)));
    before.push(node('Split', [input.name, sizes], pieces, `${input.name}/split`, [intAttribute('axis', 0)]));
    input.entries.forEach((entry, i) => {
      if (isVector(entry.shape)) return;
      const shape = `${input.name}/shape/${entry.name}`;
      after.push(int64Initializer(shape, entry.shape));
      before.push(node('Reshape', [pieces[i], shape], [entry.name], `${input.name}/reshape/${entry.name}`));
    });
    after.push(valueInfo(GRAPH_INPUT, input.name, FLOAT, [input.length]));
  }
  const flatShape = `${output.name}/flat_shape`;
  after.push(int64Initializer(flatShape, [-1]));
  const flattened = output.entries.map(({ entry }) => (isVector(entry.shape) ? entry.name : `${output.name}/flat/${entry.name}`));
  output.entries.forEach(({ entry }, i) => {
    if (!isVector(entry.shape)) after.push(node('Reshape', [entry.name, flatShape], [flattened[i]], `${output.name}/reshape/${entry.name}`));
  });
  after.push(node('Concat', flattened, [output.name], `${output.name}/concat`, [intAttribute('axis', 0)]));
  after.push(valueInfo(GRAPH_OUTPUT, output.name, FLOAT, [output.length]));

  const kept = readFields(graphField.body)
    .filter((field) => !(field.number === GRAPH_INPUT && field.wire === 2 && replacedInputs.has(stringOf(field.body, 1))))
    .map((field) => fieldBytes(graphField.body, field));
  const newGraph = concatBytes([...before, ...kept, ...after]);
  const bytes = concatBytes(modelFields.map((field) => (field === graphField ? lengthField(MODEL_GRAPH, newGraph) : fieldBytes(graph, field))));
  const packedNames = new Set(packedOutputs.map((entry) => entry.name));
  const fetches = [output.name, ...section.outputs.filter((entry) => !packedNames.has(entry.name)).map((entry) => entry.name)];
  return { bytes, inputs, output, fetches };
}
