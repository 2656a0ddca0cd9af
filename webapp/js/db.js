// IndexedDB, the app's only storage: one object store of accounts, each
// with its CryptoKeyPair (stored by structured clone, so it stays
// non-extractable). Shared by the page and the service worker.

const DB_NAME = "pushmfa";
const STORE = "accounts";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("storage transaction aborted"));
    });
  } finally {
    db.close();
  }
}

export const accounts = {
  all: () => run("readonly", (s) => s.getAll()),
  get: (id) => run("readonly", (s) => s.get(id)),
  put: (account) => run("readwrite", (s) => s.put(account)),
  remove: (id) => run("readwrite", (s) => s.delete(id)),
};
