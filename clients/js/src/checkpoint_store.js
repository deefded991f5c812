// Keep a paused run (TrainingStoppedError.checkpoint) in the browser's IndexedDB, so training
// survives a closed tab or a reload. In Node.js, store JSON.stringify(checkpoint) yourself.

const DATABASE = 'fedgrid';
const STORE = 'training-checkpoints';

function database() {
  if (!globalThis.indexedDB) {
    return Promise.reject(new Error('IndexedDB is not available here; keep JSON.stringify(error.checkpoint) in a file or database instead'));
  }
  return new Promise((resolve, reject) => {
    const request = globalThis.indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transaction(mode, work) {
  const db = await database();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** Store a training checkpoint under `key` (e.g. the model name). */
export function saveTrainingCheckpoint(key, checkpoint) {
  return transaction('readwrite', (store) => store.put(checkpoint, key));
}

/** The checkpoint stored under `key`, or undefined. */
export function loadTrainingCheckpoint(key) {
  return transaction('readonly', (store) => store.get(key));
}

export function deleteTrainingCheckpoint(key) {
  return transaction('readwrite', (store) => store.delete(key));
}
