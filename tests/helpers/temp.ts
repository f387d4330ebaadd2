/** Temporary directories and databases for tests, removed when disposed. */
import { openSqliteStore } from "../../src/store/sqlite/mod.ts";
import type { Store } from "../../src/store/store.ts";

export interface TempDir extends AsyncDisposable {
  path: string;
  /** A path inside the directory. */
  file(name: string): string;
}

export async function tempDir(prefix = "queuectl-test-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    file: (name) => `${path}/${name}`,
    [Symbol.asyncDispose]: async () => {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** True when something (a file, a directory, a link) is at `path`. */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export interface TempStore extends AsyncDisposable {
  store: Store;
  dbPath: string;
  dir: TempDir;
}

/** A fresh SQLite store in a temp directory. */
export async function tempStore(): Promise<TempStore> {
  const dir = await tempDir();
  const dbPath = dir.file("queue.db");
  const store = await openSqliteStore(dbPath);
  return {
    store,
    dbPath,
    dir,
    [Symbol.asyncDispose]: async () => {
      await store.close();
      await dir[Symbol.asyncDispose]();
    },
  };
}
