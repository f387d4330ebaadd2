/**
 * A file's device and inode ("dev:ino"), or null when it is missing (or on Windows, where Deno
 * gives no inode). The wake and kill watches (store/sqlite/wake_file.ts, worker/wake.ts) compare it
 * with the file they began on: a file renamed over another that some process holds open is
 * reported by the kernel only as a change of the old file (docs/architecture.md, "Wake-ups").
 */
export function fileIdentity(path: string): string | null {
  try {
    const info = Deno.statSync(path);
    return info.ino === null ? null : `${info.dev}:${info.ino}`;
  } catch {
    return null;
  }
}
