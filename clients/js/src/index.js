// The fedgrid package: train a Fedgrid Node's hosted plan on local data, in Node.js or a browser.

export { parseSafetensors, writeSafetensors } from './safetensors.js';
export { encodeDiff } from './diff_encoding.js';
export { Plan } from './plan.js';
export { evaluateLocally, PlanExecutor, trainLocally } from './executor.js';
export { configureRuntime, defaultThreadCount, runtimeInfo, runtimeName } from './runtime.js';
export * from './errors.js';
export { Client } from './client.js';
export { Job } from './job.js';
export { HttpTransport, WebSocketTransport } from './transport.js';
export { saveTrainingCheckpoint, loadTrainingCheckpoint, deleteTrainingCheckpoint } from './checkpoint_store.js';
