/** This process and its host: names, ids, whether a local pid is alive. */

/** The host name recorded with workers and supervisors ("localhost" when it cannot be read). */
export function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

/** `bytes` random bytes in hex: the unique part of worker and supervisor ids. */
export function randomSuffix(bytes = 3): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** True if a process with this pid exists on this machine (kill with signal 0; Unix only). */
export function processExists(pid: number): boolean {
  try {
    Deno.kill(pid, 0 as unknown as Deno.Signal);
    return true;
  } catch (err) {
    return !(err instanceof Deno.errors.NotFound);
  }
}
