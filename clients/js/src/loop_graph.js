// Wrap a plan's training graph in an ONNX Loop, so that one session.run takes several steps of a
// local round. Each run pays a fixed cost in the runtime's binding: onnxruntime-node hands every
// output back as a new zero-filled ArrayBuffer and copies the result into it, which for a model
// of McMahan's 2NN size (0.8 MB of parameters) is a fifth of a step. Inside a Loop the parameters
// stay in the runtime between steps; they cross the binding once per run, not once per step.
//
// The Loop's body is the plan's graph itself: its nodes, initializers and value infos, byte for
// byte. Each iteration Gathers its batch from a [steps, batch, ...] tensor of all the run's
// batches; the parameters and optimizer state are loop-carried (the body's updated outputs become
// the next iteration's inputs); the learning rate and FedProx's global parameters come from the
// outer graph, the same for every step; the loss and metrics are scan outputs, one per step.
// Gather only moves values, so the arithmetic is the plan's own: k steps of the Loop give bit for
// bit the parameters of k separate steps (test/loop_graph.test.js). The plan's bytes, hash and
// manifest are unchanged: this is only how the executor runs a round.

import {
  BOOL, GRAPH_INITIALIZER, GRAPH_INPUT, GRAPH_NAME, GRAPH_OUTPUT, INT64, MODEL_GRAPH, VALUE_INFO_NAME, concatBytes, defaultOpset,
  elementTypeOf, fieldBytes, graphAttribute, intAttribute, lengthField, node, readFields, renamedValueInfo, stringField,
  stringOf, valueInfo,
} from './onnx_proto.js';

const PREFIX = 'fedgrid.loop/';
/** The roles whose inputs and outputs the Loop knows where to put. */
const CARRIED = { parameter: 'updated_parameter', optimizer_state: 'updated_optimizer_state' };
const OUTER = new Set(['learning_rate', 'global_parameter']);
/** Loop's subgraph semantics as used here (M given, cond omitted) hold from opset 11 on. */
const MIN_OPSET = 11;

/**
 * The Loop form of a training graph, or null where it does not apply (an input role it does not
 * know, a carried input without its updated output, an operator set before 11).
 * @param {Uint8Array} graph  the plan's training graph (ONNX ModelProto bytes)
 * @param {{inputs: object[], outputs: object[]}} section  the manifest's `train` section
 * @returns {null | {bytes: Uint8Array, steps: string, features: string, labels: string,
 *   carried: {entry: object, initial: string, final: string}[], outer: object[],
 *   scanned: {entry: object, name: string}[]}}  the outer graph's input and output names:
 *   `steps` (an int64 scalar), `features`/`labels` (the batches stacked on a first axis),
 *   `carried` (each parameter and state entry's initial input and final output), `outer` (the
 *   manifest inputs fed under their own names), `scanned` (the other outputs, one row per step)
 */
export function loopTrainingGraph(graph, section) {
  const byRole = (role) => section.inputs.filter((entry) => entry.role === role);
  if (section.inputs.some((entry) => !(entry.role in CARRIED) && !OUTER.has(entry.role) && entry.role !== 'features' && entry.role !== 'labels')) return null;
  const [features] = byRole('features');
  const [labels] = byRole('labels');
  if (!features || !labels || byRole('features').length !== 1 || byRole('labels').length !== 1) return null;
  const carriedInputs = [...byRole('parameter'), ...byRole('optimizer_state')];
  const carriedOutputs = carriedInputs.map((input) => section.outputs.find((output) => output.role === CARRIED[input.role] && output.parameter === input.parameter));
  if (!carriedInputs.length || carriedOutputs.some((output) => !output)) return null;
  const scannedOutputs = section.outputs.filter((output) => !carriedOutputs.includes(output));
  const taken = [...section.inputs, ...section.outputs].map((entry) => entry.name);
  if (taken.some((name) => name.startsWith(PREFIX))) return null;

  const modelFields = readFields(graph);
  if (defaultOpset(modelFields) < MIN_OPSET) return null;
  const graphField = modelFields.find((field) => field.number === MODEL_GRAPH && field.wire === 2);
  if (!graphField) return null;
  const body = graphField.body;
  const fields = readFields(body);
  const declared = (number) => new Map(fields.filter((field) => field.number === number && field.wire === 2).map((field) => [stringOf(field.body, VALUE_INFO_NAME), field]));
  const graphInputs = declared(GRAPH_INPUT);
  const graphOutputs = declared(GRAPH_OUTPUT);
  // An input also given as an initializer is a constant with a default, not a thing to feed.
  for (const field of fields) if (field.number === GRAPH_INITIALIZER && field.wire === 2) graphInputs.delete(stringOf(field.body, 8));
  const manifestNames = new Set(section.inputs.map((entry) => entry.name));
  if ([...graphInputs.keys()].some((name) => !manifestNames.has(name))) return null;
  if ([...section.inputs, ...section.outputs].some((entry) => !(graphInputs.has(entry.name) || graphOutputs.has(entry.name)))) return null;

  const names = {
    steps: `${PREFIX}steps`,
    features: `${PREFIX}features`,
    labels: `${PREFIX}labels`,
    iteration: `${PREFIX}iteration`,
    condition: `${PREFIX}condition`,
    conditionOut: `${PREFIX}condition_out`,
  };
  const carried = carriedInputs.map((entry, i) => ({ entry, output: carriedOutputs[i], initial: `${PREFIX}initial/${entry.name}`, final: `${PREFIX}final/${carriedOutputs[i].name}` }));
  const scanned = scannedOutputs.map((entry) => ({ entry, name: `${PREFIX}each/${entry.name}` }));

  // The body: the plan's graph with its batch inputs Gathered from the stacked batches, its
  // carried inputs and outputs in the Loop's order, and its other inputs left to the outer scope.
  const bodyGraph = concatBytes([
    node('Gather', [names.features, names.iteration], [features.name], `${PREFIX}gather_features`, [intAttribute('axis', 0)]),
    node('Gather', [names.labels, names.iteration], [labels.name], `${PREFIX}gather_labels`, [intAttribute('axis', 0)]),
    node('Identity', [names.condition], [names.conditionOut], `${PREFIX}condition`),
    ...fields.filter((field) => field.number !== GRAPH_INPUT && field.number !== GRAPH_OUTPUT && field.number !== GRAPH_NAME)
      .map((field) => fieldBytes(body, field)),
    stringField(GRAPH_NAME, `${PREFIX}body`),
    valueInfo(GRAPH_INPUT, names.iteration, INT64, []),
    valueInfo(GRAPH_INPUT, names.condition, BOOL, []),
    ...carried.map(({ entry }) => fieldBytes(body, graphInputs.get(entry.name))),
    valueInfo(GRAPH_OUTPUT, names.conditionOut, BOOL, []),
    ...carried.map(({ output }) => fieldBytes(body, graphOutputs.get(output.name))),
    ...scanned.map(({ entry }) => fieldBytes(body, graphOutputs.get(entry.name))),
  ]);

  const stacked = (entry, name) => valueInfo(GRAPH_INPUT, name, elementTypeOf(graphInputs.get(entry.name).body),
    [names.steps, ...entry.shape.map((d, i) => (Number.isInteger(d) && d >= 0 ? d : `${PREFIX}dim${i}/${entry.name}`))]);
  const outer = section.inputs.filter((entry) => OUTER.has(entry.role));
  const outerGraph = concatBytes([
    node('Loop', [names.steps, '', ...carried.map(({ initial }) => initial)], [...carried.map(({ final }) => final), ...scanned.map(({ name }) => name)],
      `${PREFIX}loop`, [graphAttribute('body', bodyGraph)]),
    stringField(GRAPH_NAME, `${PREFIX}round`),
    valueInfo(GRAPH_INPUT, names.steps, INT64, []),
    stacked(features, names.features),
    stacked(labels, names.labels),
    ...outer.map((entry) => fieldBytes(body, graphInputs.get(entry.name))),
    ...carried.map(({ entry, initial }) => renamedValueInfo(GRAPH_INPUT, graphInputs.get(entry.name).body, initial)),
    ...carried.map(({ output, final }) => renamedValueInfo(GRAPH_OUTPUT, graphOutputs.get(output.name).body, final)),
    ...scanned.map(({ entry, name }) => valueInfo(GRAPH_OUTPUT, name, elementTypeOf(graphOutputs.get(entry.name).body), null)),
  ]);
  const bytes = concatBytes(modelFields.map((field) => (field === graphField ? lengthField(MODEL_GRAPH, outerGraph) : fieldBytes(graph, field))));
  return {
    bytes,
    steps: names.steps,
    features: names.features,
    labels: names.labels,
    carried: carried.map(({ entry, output, initial, final }) => ({ entry, output, initial, final })),
    outer,
    scanned,
  };
}
