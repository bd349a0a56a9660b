/** `aio run`: start a node, report what it runs, and close it gracefully on a signal. */
import { PluginCore } from "../core/plugin-core.js";
import type { PluginInfo } from "../core/types.js";
import { AioError } from "../errors.js";
import { chooseConfig } from "./paths.js";

function table(rows: string[][]): string {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? "").length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export function pluginSummary(plugins: PluginInfo[]): string {
  const rows = [["PLUGIN", "VERSION", "STATE", "LOAD", "ISOLATION"]];
  for (const p of plugins) {
    rows.push([
      p.name,
      p.version || "-",
      p.state,
      p.loadTimeMs !== undefined ? `${p.loadTimeMs} ms` : "-",
      p.isolation,
    ]);
  }
  const failures = plugins
    .filter((p) => p.state === "failed")
    .map((p) => `  ${p.name}: ${p.error ?? "unknown reason"}`);
  return [table(rows), ...(failures.length ? ["", "Failed:", ...failures] : [])].join("\n");
}

export async function runCommand(configArg: string | undefined): Promise<void> {
  const { file, why } = chooseConfig(configArg);
  let core: PluginCore;
  try {
    core = new PluginCore(file);
  } catch (error) {
    process.stderr.write(`${error instanceof AioError ? error.message : String(error)}\n`);
    process.exitCode = 1;
    return;
  }
  process.stdout.write(`Config: ${file}${why === "given" ? "" : ` (${why})`}\n`);

  // Holds the process open while only plugins (which may own no handles) are running.
  const keepAlive = setInterval(() => undefined, 2 ** 30);
  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) {
      process.stderr.write(`${signal} again: exiting without waiting for plugins\n`);
      process.exit(130);
    }
    closing = true;
    clearInterval(keepAlive);
    process.stdout.write(`${signal}: shutting down (send it again to force)\n`);
    core.close().then(
      () => {
        process.exitCode = 0;
        // A plugin may leave a timer or socket open; the node is closed, so do not wait for it.
        setTimeout(() => process.exit(0), 500).unref();
      },
      (error: unknown) => {
        process.stderr.write(`shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", shutdown);
  process.on("SIGTERM", shutdown);

  try {
    await core.start();
  } catch (error) {
    process.stderr.write(
      `start failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    clearInterval(keepAlive);
    await core.close();
    process.exitCode = 1;
    return;
  }
  process.stdout.write(
    `Node "${core.hostname}" is running.\n${pluginSummary(core.listPlugins())}\n`,
  );
  if (core.logFile) process.stdout.write(`Log file: ${core.logFile}\n`);
  process.stdout.write("Press Ctrl-C to stop.\n");
}
