/**
 * How far the V8 heap of a node started by `aio run` may grow past what survived its last full
 * collection.
 *
 * V8 lets the heap grow up to 4× its live size when the process may use several GiB (its limit
 * scales with the machine's memory). A node is a long-lived server on machines from a Raspberry
 * Pi to a VM: a burst (a flood of connections, a big stream) raises the live size for a moment,
 * and the heap then stays at 4× that long after the burst, filled with the garbage of ordinary
 * calls. With 30 % the `hostile` benchmark's node peaked at 172–186 MiB instead of 244–254 MiB,
 * with the same calls/s (bench/README.md, "hostile").
 *
 * This is a process-wide V8 setting, so only the command line makes it; a program that embeds
 * `PluginCore` decides for its own process (docs/operations.md, "Memory").
 */
import { setFlagsFromString } from "node:v8";

export const HEAP_GROWING_PERCENT = 30;

/**
 * Sets V8's heap growing factor to 1.3, unless the process was started with its own
 * `--heap-growing-percent` (then that one stays). Returns whether it set it.
 */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return false;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}
