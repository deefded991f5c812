// Runs every conformance vector with onnxruntime-web (WASM) in Node.js, following SPEC.md and
// README.md alone: proof that the format is executable outside Python. Not an SDK: it borrows
// onnxruntime-web from clients/js/node_modules (run `npm ci` there first).
//
//   node plans/conformance/check_onnxruntime_web.mjs        # exit status 1 if any vector fails
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "..", "clients", "js", "package.json"));
const ort = require("onnxruntime-web");
ort.env.wasm.numThreads = 1;

// SPEC.md §1: 8-byte little-endian header length, JSON header, data section.
function parseSafetensors(buffer) {
  const headerLength = Number(buffer.readBigUInt64LE(0));
  const header = JSON.parse(buffer.subarray(8, 8 + headerLength).toString("utf8"));
  const metadata = header.__metadata__ ?? {};
  delete header.__metadata__;
  const tensors = {};
  for (const [name, entry] of Object.entries(header)) {
    const [begin, end] = entry.data_offsets;
    const bytes = new Uint8Array(buffer.subarray(8 + headerLength + begin, 8 + headerLength + end)); // aligned copy
    const data =
      entry.dtype === "F32" ? new Float32Array(bytes.buffer) : entry.dtype === "I64" ? new BigInt64Array(bytes.buffer) : bytes;
    tensors[name] = { shape: entry.shape, data };
  }
  return { tensors, metadata };
}

const read = (folder, file) => parseSafetensors(readFileSync(join(folder, file)));
const size = (shape) => shape.reduce((a, b) => a * b, 1);
let failures = 0;

for (const vector of readdirSync(here).sort()) {
  const folder = join(here, vector);
  if (!existsSync(join(folder, "vector.json"))) continue;
  const spec = JSON.parse(readFileSync(join(folder, "vector.json"), "utf8"));
  const plan = read(folder, "plan.fgplan");
  const manifest = JSON.parse(plan.metadata["fedgrid.plan"]);
  const session = await ort.InferenceSession.create(plan.tensors["graph/train"].data);
  const start = read(folder, "start.safetensors").tensors;
  const batches = read(folder, "batches.safetensors").tensors;
  const final = read(folder, "final.safetensors").tensors;

  let parameters = Object.fromEntries(Object.entries(start).map(([name, t]) => [name, t.data]));
  let state = Object.fromEntries(manifest.optimizer_state.map((e) => [e.parameter, new Float32Array(size(e.shape))]));
  let lossError = 0;
  let lossViolations = 0;
  for (let step = 0; step < spec.steps; step++) {
    const features = batches[`features/${step}`];
    const labels = batches[`labels/${step}`];
    const feeds = {};
    for (const io of manifest.train.inputs) {
      const shape = io.shape.map((d) => (d === "batch" ? features.shape[0] : d));
      const value = {
        features: () => features.data,
        labels: () => labels.data,
        learning_rate: () => Float32Array.of(spec.learning_rate),
        parameter: () => parameters[io.parameter],
        optimizer_state: () => state[io.parameter],
        global_parameter: () => start[io.parameter].data,
      }[io.role]();
      feeds[io.name] = new ort.Tensor(io.dtype, value, shape);
    }
    const outputs = await session.run(feeds);
    const updated = {};
    const updatedState = {};
    for (const io of manifest.train.outputs) {
      const value = outputs[io.name].data;
      if (io.role === "loss") {
        const expected = spec.expected_loss[step];
        const error = Math.abs(value[0] - expected);
        lossError = Math.max(lossError, error);
        if (error > spec.tolerance.loss.atol + spec.tolerance.loss.rtol * Math.abs(expected)) lossViolations++;
      } else if (io.role === "updated_parameter") updated[io.parameter] = value;
      else if (io.role === "updated_optimizer_state") updatedState[io.parameter] = value;
    }
    parameters = updated;
    if (manifest.optimizer_state.length) state = updatedState;
  }
  let parameterError = 0;
  let parameterViolations = 0;
  const { atol, rtol } = spec.tolerance.parameters;
  for (const [name, expected] of Object.entries(final)) {
    for (let i = 0; i < expected.data.length; i++) {
      const error = Math.abs(parameters[name][i] - expected.data[i]);
      parameterError = Math.max(parameterError, error);
      if (error > atol + rtol * Math.abs(expected.data[i])) parameterViolations++;
    }
  }
  const ok = lossViolations === 0 && parameterViolations === 0;
  if (!ok) failures++;
  console.log(
    `${ok ? "ok  " : "FAIL"} ${vector}: max |loss error| ${lossError.toExponential(2)}, max |parameter error| ${parameterError.toExponential(2)}`,
  );
}
process.exit(failures ? 1 : 0);
