/**
 * For long-running commands of `cli/` (the dashboard): which stop signals this process was started
 * ignoring, and so must keep ignoring (`nohup`, a shell's `cmd &`); see worker/ignored_signals.ts.
 */
export { keepIgnoredSignals } from "../worker/ignored_signals.ts";
