/**
 * A nats-server for the benchmarks (the `nats` section): one process on 127.0.0.1, on a port the
 * server picks itself (`-p -1`, read back from its log), ready when its log says "Server is
 * ready" (nothing sleeps). `stop()` kills it; a benchmark process that exits anyway kills it on
 * the way out. Needs Debian's `nats-server` (`apt-get install nats-server`; .ci/run installs it).
 */
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";

const HOST = "127.0.0.1";

/** The nats-server binary: on PATH, or where Debian puts it (/usr/sbin, often not on PATH). */
export function natsServerBinary() {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs.filter(Boolean)) {
    const file = join(dir, "nats-server");
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // Not here; the next folder.
    }
  }
  throw new Error(
    "nats-server not found (looked on PATH, /usr/sbin and /usr/local/sbin); install it with `apt-get install nats-server` (Debian)",
  );
}

/**
 * Starts nats-server and resolves once it is ready: { url, pid, version, stop() }. `stop()`
 * SIGKILLs it and resolves once it is gone.
 */
export async function startNatsServer({ timeoutMs = 10_000, args = [] } = {}) {
  const binary = natsServerBinary();
  const child = spawn(binary, ["-a", HOST, "-p", "-1", "-n", "aio-bench", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  process.once("exit", kill);
  const exited = new Promise((resolve) => {
    child.once("exit", resolve);
    child.once("error", resolve);
  });
  const log = [];
  let port = 0;
  let version = "";
  try {
    await new Promise((resolve, reject) => {
      const fail = (why) => reject(new Error(`nats-server ${why}; its log:\n${log.join("\n")}`));
      const timer = setTimeout(() => fail(`was not ready within ${timeoutMs} ms`), timeoutMs);
      child.once("error", (error) => fail(`could not start (${binary}: ${error.message})`));
      child.once("exit", (code, signal) => fail(`exited (${code ?? signal}) before it was ready`));
      createInterface({ input: child.stderr }).on("line", (line) => {
        if (log.length < 1000) log.push(line);
        const listen = / Listening for client connections on 127\.0\.0\.1:(\d+)$/.exec(line);
        if (listen) port = Number(listen[1]);
        const v = / Version: +(\S+)$/.exec(line);
        if (v) version = v[1];
        if (line.endsWith("Server is ready")) {
          clearTimeout(timer);
          if (port) resolve();
          else fail("said it was ready without saying its client port");
        }
      });
    });
  } catch (error) {
    kill();
    await exited;
    process.removeListener("exit", kill);
    throw error;
  }
  return {
    url: `nats://${HOST}:${port}`,
    pid: child.pid,
    version,
    async stop() {
      kill();
      await exited;
      process.removeListener("exit", kill);
    },
  };
}
