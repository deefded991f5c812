// The example page's logic: one device of a Fedgrid cycle, in a browser tab, using the bundle's
// global `fedgrid`. Query parameters prefill the form: ?model=&version=&shard=&shards=&autostart=1;
// ?threads=N overrides the SDK's thread count (by default several where the Node serves this page
// cross-origin isolated, else 1). window.fedgridExample exposes the state for automated tests.
/* global fedgrid */
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  $('url').value = params.get('url') ?? location.origin;
  for (const key of ['model', 'version', 'shard', 'shards', 'token']) if (params.has(key)) $(key).value = params.get(key);
  if (params.has('threads')) fedgrid.configureRuntime({ numThreads: Number(params.get('threads')) });

  const example = { state: 'idle', losses: [], result: null, report: null, assignment: null, error: null, rejection: null, runtime: null };
  window.fedgridExample = example;
  let controller = null;

  function setStatus(state, text) {
    example.state = state;
    $('status').dataset.state = state;
    $('status').textContent = text;
    log(text);
  }

  function log(text) {
    $('log').textContent += `${new Date().toLocaleTimeString()}  ${text}\n`;
    $('log').scrollTop = $('log').scrollHeight;
  }

  /** Which runtime trains here, and on how many threads: the configured ones until the WASM has
   *  started, then the ones it runs. */
  function showRuntime() {
    const info = fedgrid.runtimeInfo();
    example.runtime = info;
    const threads = `${info.threads} thread${info.threads === 1 ? '' : 's'}`;
    const why = info.crossOriginIsolated ? 'cross-origin isolated page' : 'page not cross-origin isolated: one thread';
    $('runtime').textContent = `Runtime: ${info.name} (${info.executionProviders.join(', ')}), ${threads} (${why})`;
  }

  function drawChart() {
    const canvas = $('chart');
    const context = canvas.getContext('2d');
    const { width, height } = canvas;
    context.clearRect(0, 0, width, height);
    const losses = example.losses;
    context.fillStyle = '#555';
    context.font = '12px system-ui';
    context.fillText('loss per update', 8, 14);
    if (losses.length < 1) return;
    const top = Math.max(...losses) * 1.05;
    const pad = 28;
    context.fillText(top.toFixed(2), 4, pad);
    context.fillText('0', 4, height - 6);
    context.strokeStyle = '#2b6cb0';
    context.lineWidth = 2;
    context.beginPath();
    losses.forEach((loss, i) => {
      const x = pad + (losses.length === 1 ? 0 : (i / (losses.length - 1)) * (width - 2 * pad));
      const y = height - pad - (loss / top) * (height - 2 * pad);
      if (i === 0) context.moveTo(x, y); else context.lineTo(x, y);
    });
    context.stroke();
  }

  // scikit-learn's digits, 8x8 pixels 0..16, built into /js/examples/digits.safetensors.
  let digits = null;
  async function loadDigits() {
    if (digits) return digits;
    const bytes = new Uint8Array(await (await fetch('/js/examples/digits.safetensors')).arrayBuffer());
    const { tensors } = fedgrid.parseSafetensors(bytes);
    digits = { pixels: tensors.pixels.data, labels: tensors.labels.data, count: tensors.labels.data.length };
    return digits;
  }

  /** This device's shard, shaped for the plan: 64 features, or 28x28 (digits scaled 3x and padded, as the zoo does). */
  function shard(data, featureSize, index, count) {
    const rows = [];
    for (let i = index % count; i < data.count; i += count) rows.push(i);
    const features = new Float32Array(rows.length * featureSize);
    const labels = rows.map((i) => data.labels[i]);
    rows.forEach((row, k) => {
      const pixels = data.pixels.subarray(row * 64, row * 64 + 64);
      const out = features.subarray(k * featureSize, (k + 1) * featureSize);
      if (featureSize === 64) {
        for (let p = 0; p < 64; p += 1) out[p] = pixels[p] / 16;
      } else if (featureSize === 784) {
        for (let y = 0; y < 24; y += 1) for (let x = 0; x < 24; x += 1) out[(y + 2) * 28 + (x + 2)] = pixels[Math.floor(y / 3) * 8 + Math.floor(x / 3)] / 16;
      } else {
        throw new Error(`this page has digits for plans with 64 or 784 features, not ${featureSize}`);
      }
    });
    return { features, labels };
  }

  function checkpointKey() { return `example:${$('model').value}`; }

  async function refreshResume() {
    try {
      $('resume').disabled = !(await fedgrid.loadTrainingCheckpoint(checkpointKey()));
    } catch { $('resume').disabled = true; }
  }

  async function run({ resume = false } = {}) {
    $('train').disabled = true;
    $('resume').disabled = true;
    $('stop').disabled = false;
    example.error = null;
    example.rejection = null;
    const client = new fedgrid.Client({ url: $('url').value, authToken: $('token').value || undefined });
    const job = client.newJob({ modelName: $('model').value, modelVersion: $('version').value || undefined });
    try {
      const data = await loadDigits();
      let saved = null;
      if (resume) {
        saved = await fedgrid.loadTrainingCheckpoint(checkpointKey());
        setStatus('training', `Resuming cycle ${saved.assignment.cycle} at update ${saved.updates}…`);
        example.losses = [...saved.losses];
      } else {
        setStatus('requesting', 'Asking the Node for a place in the current cycle…');
        job.on('rejected', ({ reason, timeout }) => {
          example.rejection = { reason, timeout };
          setStatus('rejected', reason === 'training_finished' ? 'This model has finished training.' : `Not selected (${reason}); ask again in ${Math.ceil(timeout ?? 0)} s.`);
        });
        const assignment = await job.request();
        if (assignment.status !== 'accepted') return;
        example.assignment = { cycle: assignment.cycle, checkpoint: assignment.checkpoint };
        example.losses = [];
        setStatus('training', `Accepted into cycle ${assignment.cycle} (checkpoint ${assignment.checkpoint}); training…`);
      }
      const plan = resume ? (await job.executorFor(saved.assignment)).plan : job.assignment.plan;
      const featureInput = plan.manifest.train.inputs.find((input) => input.role === 'features');
      const featureSize = featureInput.shape.slice(1).reduce((a, b) => a * b, 1);
      const { features, labels } = shard(data, featureSize, Number($('shard').value), Number($('shards').value));
      controller = new AbortController();
      const result = await job.train({
        data: features,
        labels,
        signal: controller.signal,
        resumeFrom: saved ?? undefined,
        onBatch: ({ update, loss }) => {
          showRuntime(); // the threads the WASM started with, once it has
          example.losses.push(loss);
          drawChart();
          $('status').textContent = `Training: update ${update}, loss ${loss.toFixed(4)}`;
          return new Promise((resolve) => setTimeout(resolve, 0)); // let the page paint and the Stop button work
        },
      });
      example.result = result;
      setStatus('reporting', `Trained on ${result.numSamples} digits (${result.updates} updates, mean loss ${result.metrics.loss.toFixed(4)}); reporting the diff…`);
      example.report = await job.report(result);
      await fedgrid.deleteTrainingCheckpoint(checkpointKey()).catch(() => {});
      setStatus('reported', `Reported to cycle ${example.report.cycle}. The Node averages it with the other devices' reports.`);
    } catch (error) {
      if (error instanceof fedgrid.TrainingStoppedError) {
        await fedgrid.saveTrainingCheckpoint(checkpointKey(), error.checkpoint);
        setStatus('stopped', `Stopped after ${error.checkpoint.updates} updates; progress saved in this browser (IndexedDB).`);
      } else {
        example.error = { name: error.name, code: error.code, message: error.message };
        setStatus('error', `${error.name}${error.code ? ` (${error.code})` : ''}: ${error.message}`);
      }
    } finally {
      controller = null;
      client.close();
      $('train').disabled = false;
      $('stop').disabled = true;
      await refreshResume();
    }
  }

  $('train').addEventListener('click', () => run());
  $('resume').addEventListener('click', () => run({ resume: true }));
  $('stop').addEventListener('click', () => controller?.abort());
  drawChart();
  showRuntime();
  refreshResume();
  if (params.get('autostart') === '1') run();
})();
