/**
 * A small disk of the test's own: a tmpfs of a few MiB mounted on a temporary directory. `fill()`
 * writes a filler file until the kernel says ENOSPC (the disk is full for everyone writing there),
 * `free()` deletes it. Disposal unmounts (lazily if a process still holds a file there) and removes
 * the directory: also when the test failed. Needs root (mount) on Linux.
 */
import { hasProgram, mustRun, runProgram, uid } from "./run.ts";

export interface Tmpfs extends AsyncDisposable {
  readonly path: string;
  readonly sizeBytes: number;
  /** A path inside the mount. */
  file(name: string): string;
  /** Fills the disk with a filler file until ENOSPC; returns the bytes written. */
  fill(): Promise<number>;
  /** Deletes the filler file. */
  free(): Promise<void>;
  /** Bytes available to an unprivileged writer right now. */
  availableBytes(): Promise<number>;
}

/** Why a tmpfs cannot be mounted here, or null when it can. */
export function tmpfsUnavailable(): string | null {
  if (Deno.build.os !== "linux") return "tmpfs mounts are Linux-only";
  if (uid() !== 0) return "mounting a tmpfs needs root";
  if (!hasProgram("mount") || !hasProgram("umount")) return "no mount/umount";
  return null;
}

export async function mountTmpfs(sizeBytes: number): Promise<Tmpfs> {
  const why = tmpfsUnavailable();
  if (why !== null) throw new Error(`cannot mount a tmpfs: ${why}`);
  const path = await Deno.makeTempDir({ prefix: "queuectl-tmpfs-" });
  try {
    await mustRun("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes},mode=0700`, "tmpfs", path]);
  } catch (err) {
    await Deno.remove(path).catch(() => {});
    throw err;
  }
  const filler = `${path}/.filler`;
  return {
    path,
    sizeBytes,
    file: (name) => `${path}/${name}`,
    fill: async () => {
      const file = await Deno.open(filler, { create: true, append: true });
      const chunk = new Uint8Array(64 * 1024);
      let written = 0;
      try {
        for (let size = chunk.length; size >= 512;) {
          try {
            written += await file.write(chunk.subarray(0, size));
          } catch {
            size /= 2; // ENOSPC: the last pages, in smaller writes
          }
        }
      } finally {
        file.close();
      }
      return written;
    },
    free: async () => {
      await Deno.remove(filler).catch(() => {});
    },
    availableBytes: async () => {
      const r = await mustRun("stat", ["-f", "-c", "%a %S", path]);
      const [blocks, size] = r.stdout.trim().split(/\s+/).map(Number);
      return blocks * size;
    },
    [Symbol.asyncDispose]: async () => {
      const r = await runProgram("umount", [path]);
      if (r.code !== 0) await runProgram("umount", ["-l", path]);
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}
