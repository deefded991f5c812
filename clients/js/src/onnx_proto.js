// The little of ONNX's protobuf encoding that the executor's graph rewrites need (packed_graph.js,
// loop_graph.js): read a message's fields, write the few fields they add. Everything a rewrite
// does not touch is copied through byte for byte, so no protobuf library (and no .proto schema)
// has to ship in the browser bundle for a few hundred bytes of new graph.

export const FLOAT = 1; // TensorProto.DataType
export const INT64 = 7;
export const BOOL = 9;
const ATTRIBUTE_INT = 2; // AttributeProto.AttributeType
const ATTRIBUTE_GRAPH = 5;

// ModelProto, GraphProto and ValueInfoProto field numbers (onnx.proto).
export const MODEL_GRAPH = 7;
export const MODEL_OPSET_IMPORT = 8;
export const GRAPH_NODE = 1;
export const GRAPH_NAME = 2;
export const GRAPH_INITIALIZER = 5;
export const GRAPH_INPUT = 11;
export const GRAPH_OUTPUT = 12;
export const VALUE_INFO_NAME = 1;

function readVarint(bytes, position) {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (position >= bytes.length) throw new Error('truncated varint');
    const byte = bytes[position];
    position += 1;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, position];
    scale *= 128;
  }
}

/** The fields of one message: {number, wire, start, end (of the whole field), value (varints) or
 *  body (length-delimited bytes)}. */
export function readFields(bytes) {
  const fields = [];
  let position = 0;
  while (position < bytes.length) {
    const start = position;
    let key;
    [key, position] = readVarint(bytes, position);
    const number = Math.floor(key / 8);
    const wire = key % 8;
    const field = { number, wire, start };
    if (wire === 0) [field.value, position] = readVarint(bytes, position);
    else if (wire === 1) position += 8;
    else if (wire === 5) position += 4;
    else if (wire === 2) {
      let length;
      [length, position] = readVarint(bytes, position);
      field.body = bytes.subarray(position, position + length);
      position += length;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
    if (position > bytes.length) throw new Error('truncated protobuf field');
    field.end = position;
    fields.push(field);
  }
  return fields;
}

function varint(value) {
  const out = [];
  while (value >= 0x80) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Uint8Array.from(out);
}

export function concatBytes(parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export function lengthField(number, body) { return concatBytes([varint(number * 8 + 2), varint(body.length), body]); }
export function stringField(number, text) { return lengthField(number, utf8.encode(text)); }
export function varintField(number, value) { return concatBytes([varint(number * 8), varint(value)]); }

/** The first string field `number` of a message, or ''. */
export function stringOf(message, number) {
  const field = readFields(message).find((f) => f.number === number && f.wire === 2);
  return field ? fromUtf8.decode(field.body) : '';
}

/** A field's own bytes (key, length and body), to copy it into another message. */
export function fieldBytes(message, field) { return message.subarray(field.start, field.end); }

/** A NodeProto, as a GraphProto's node field. */
export function node(opType, inputs, outputs, name, attributes = []) {
  return lengthField(GRAPH_NODE, concatBytes([
    ...inputs.map((input) => stringField(1, input)),
    ...outputs.map((output) => stringField(2, output)),
    stringField(3, name),
    stringField(4, opType),
    ...attributes,
  ]));
}

export function intAttribute(name, value) {
  return lengthField(5, concatBytes([stringField(1, name), varintField(3, value), varintField(20, ATTRIBUTE_INT)]));
}

/** A graph-valued attribute (a Loop's body); `graph` the GraphProto's own bytes. */
export function graphAttribute(name, graph) {
  return lengthField(5, concatBytes([stringField(1, name), lengthField(6, graph), varintField(20, ATTRIBUTE_GRAPH)]));
}

/** A 1-D int64 initializer. */
export function int64Initializer(name, values) {
  const raw = new Uint8Array(BigInt64Array.from(values, BigInt).buffer);
  return lengthField(GRAPH_INITIALIZER, concatBytes([varintField(1, values.length), varintField(2, INT64), stringField(8, name), lengthField(9, raw)]));
}

/** A graph input or output (field `number`) of element type `elemType`; `dims` numbers, or names
 *  for dimensions left open, or null for a shape left unsaid. */
export function valueInfo(number, name, elemType, dims) {
  const shape = dims === null ? [] : [lengthField(2, concatBytes(dims.map((d) => lengthField(1, typeof d === 'number' ? varintField(1, d) : stringField(2, d)))))];
  const tensorType = lengthField(1, concatBytes([varintField(1, elemType), ...shape]));
  return lengthField(number, concatBytes([stringField(1, name), lengthField(2, tensorType)]));
}

/** A copy of a ValueInfoProto (its body) under another name, as field `number` of a graph. */
export function renamedValueInfo(number, body, name) {
  const rest = readFields(body).filter((field) => field.number !== VALUE_INFO_NAME).map((field) => fieldBytes(body, field));
  return lengthField(number, concatBytes([stringField(VALUE_INFO_NAME, name), ...rest]));
}

/** The element type of a ValueInfoProto's tensor type (its body), or 0 where it says none. */
export function elementTypeOf(body) {
  const type = readFields(body).find((field) => field.number === 2 && field.wire === 2);
  const tensor = type && readFields(type.body).find((field) => field.number === 1 && field.wire === 2);
  const elem = tensor && readFields(tensor.body).find((field) => field.number === 1 && field.wire === 0);
  return elem ? elem.value : 0;
}

/** The version of the default (ai.onnx) operator set a model imports, or 0. */
export function defaultOpset(modelFields) {
  for (const field of modelFields) {
    if (field.number !== MODEL_OPSET_IMPORT || field.wire !== 2) continue;
    const entry = readFields(field.body);
    const domain = entry.find((f) => f.number === 1 && f.wire === 2);
    const name = domain ? fromUtf8.decode(domain.body) : '';
    if (name === '' || name === 'ai.onnx') return entry.find((f) => f.number === 2 && f.wire === 0)?.value ?? 0;
  }
  return 0;
}
