/** `aio run`: start a node, report what it runs, and close it gracefully on a signal. */
import type { LogLevelName } from "../config/types.js";
import type { PluginCore } from "../node/plugin-core.js";
import { limitHeapGrowth } from "./heap.js";
import { colorsFor, describeError, EXIT, exitWhenFlushed, note, out } from "./output.js";
import { chooseConfig } from "./paths.js";
import { nodeTable, pluginTable } from "./tables.js";
import { createCore, listenAddress, startFailure, startWithProgress } from "./target.js";

export interface RunOptions {
  logLevel?: LogLevelName | undefined;
}

/** What runs: the plugins (version, state, load time, isolation, failures), address, nodes. */
export function startSummary(core: PluginCore, color: boolean): string {
  const lines = [`Node "${core.hostname}" is running (pid ${process.pid}).`];
  const address = listenAddress(core);
  if (address) {
    const everywhere = /\/\/(0\.0\.0\.0|\[::\]):/.test(address) ? " (every interface)" : "";
    lines.push(`Listening on ${address}${everywhere}`);
  } else {
    lines.push("Networking: off");
  }
  lines.push("", pluginTable(core.listPlugins(), color), "");
  if (address) {
    const nodes = core.nodes();
    lines.push(nodes.length ? `Nodes:\n${nodeTable(nodes, color)}` : "Nodes: none found yet");
  }
  if (core.logFile) lines.push(`Log file: ${core.logFile}`);
  return lines.join("\n");
}

export async function runCommand(
  configArg: string | undefined,
  options: RunOptions,
): Promise<void> {
  limitHeapGrowth();
  const { file, why } = chooseConfig(configArg);
  const core = await createCore(file, options.logLevel);
  out(`Config: ${file}${why === "given" ? "" : ` (${why})`}`);

  // Holds the process open while only plugins (which may own no handles) are running.
  const keepAlive = setInterval(() => undefined, 2 ** 30);
  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) {
      note(`${signal} again: exiting without waiting for plugins`);
      process.exit(EXIT.FORCED);
    }
    closing = true;
    clearInterval(keepAlive);
    out(`${signal}: shutting down; calls in flight may finish (send ${signal} again to force)`);
    core.close().then(
      () => exitWhenFlushed(EXIT.OK),
      (error: unknown) => {
        note(`shutdown failed: ${describeError(error)}`);
        return exitWhenFlushed(EXIT.FAILED);
      },
    );
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);
  // A plugin's promise that rejects with nobody waiting for it (a call it did not await) would
  // end the process, and every other plugin with it: it is reported, and the node serves on.
  process.on("unhandledRejection", (reason) => {
    note(
      `ERROR: a promise was rejected and nothing handled it (a plugin's call not awaited?); the node keeps running: ${describeError(reason)}`,
    );
  });

  try {
    await startWithProgress(core);
  } catch (error) {
    if (closing) return;
    closing = true;
    clearInterval(keepAlive);
    note(describeError(startFailure(error, core)));
    await core.close().catch(() => undefined);
    await exitWhenFlushed(EXIT.FAILED);
  }
  // A signal during start-up: the node is closing already.
  if (closing) return;
  out(`${startSummary(core, colorsFor(process.stdout))}\nPress Ctrl-C to stop.`);
}
