/**
 * Fixtures for the networking tests: plugin folders written into temp dirs, nodes started in
 * this process (several PluginCores, each with its own port) or in child processes, and
 * helpers that await a condition with a deadline instead of sleeping.
 *
 * Only the package's public API and test/support.ts, so these tests do not depend on the core
 * tests' helpers. The security tests build their plugin folders with the fixtures here.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  type ConfigObject,
  type NetworkingConfig,
  type NodeInfo,
  PluginCore,
  RequestError,
} from "aio-assistant-core";
import { expect } from "vitest";
import {
  freePort,
  removeTempDirs,
  shared,
  sharedRef,
  tempDir,
  waitFor,
  writeTree,
} from "../support.js";

export { freePort, shared, sharedRef, tempDir, waitFor, writeTree };

export const NODE_SCRIPT = fileURLToPath(new URL("./fixtures/node-proc.mjs", import.meta.url));

// ---------------------------------------------------------------------------------- plugins

export interface EndpointSpec {
  internal_name: string;
  access_name?: string;
  accessible_by_other_plugins?: boolean;
  remote?: boolean;
  arguments?: Array<{ name: string; type?: string; required?: boolean; default?: unknown }>;
  topic?: string;
  tags?: string[];
}

/** A remote-callable endpoint (`remote: true`) with arguments of type any unless given. */
export function rep(
  name: string,
  args: Array<string | { name: string; type?: string; required?: boolean; default?: unknown }> = [],
  extra: Omit<EndpointSpec, "internal_name" | "arguments"> = {},
): EndpointSpec {
  return {
    internal_name: name,
    remote: true,
    ...extra,
    arguments: args.map((a) => (typeof a === "string" ? { name: a, type: "any" } : a)),
  };
}

export interface PluginDef {
  /** The class body. */
  body: string;
  /** Code before the class (helpers). */
  header?: string;
  /** The manifest's `remote` (default true). */
  remote?: boolean;
  endpoints: EndpointSpec[];
}

export const SLEEP = `const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));`;

/** Writes plugin folders `<dir>/plugins/<Name>` and a package.json making them ES modules. */
export function writePlugins(dir: string, plugins: Record<string, PluginDef>): void {
  const files: Record<string, string> = { "package.json": '{ "type": "module" }\n' };
  for (const [name, def] of Object.entries(plugins)) {
    files[`plugins/${name}/plugin.ts`] =
      `import { Plugin } from "aio-assistant-core";\n${def.header ?? ""}\nexport class ${name} extends Plugin {\n${def.body}\n}\n`;
    files[`plugins/${name}/plugin_config.yml`] = `${JSON.stringify(
      { version: "1.0.0", remote: def.remote ?? true, endpoints: def.endpoints },
      null,
      2,
    )}\n`;
  }
  writeTree(dir, files);
}

/** A folder holding the given plugins. */
export function pluginDir(plugins: Record<string, PluginDef>): string {
  const dir = tempDir();
  writePlugins(dir, plugins);
  return dir;
}

// ---------------------------------------------------------------------------------- nodes

export type PluginEntrySpec = {
  name: string;
  arguments?: unknown;
  allowed_nodes?: string[];
  enabled?: boolean;
};

export interface NodeSpec {
  hostname: string;
  /** Folder holding `plugins/<Name>` (from {@link pluginDir}). */
  dir: string;
  plugins?: Array<string | PluginEntrySpec>;
  networking?: Partial<NetworkingConfig>;
  general?: Record<string, unknown>;
}

/** Short heartbeats so liveness tests run in well under a second. */
export const FAST_NET: Partial<NetworkingConfig> = {
  enabled: true,
  port: 0,
  heartbeat_interval: 0.2,
  liveness_timeout: 0.8,
};

/**
 * For nodes with a secret, which otherwise listen on every interface and meet over mDNS the
 * nodes of test files running at the same time.
 */
export const LOOPBACK: Partial<NetworkingConfig> = { bind: "127.0.0.1" };

export function nodeConfig(spec: NodeSpec): ConfigObject {
  return {
    baseDir: spec.dir,
    plugins: (spec.plugins ?? []).map((p) => (typeof p === "string" ? { name: p } : p)),
    general: {
      hostname: spec.hostname,
      plugin_package: "plugins",
      console_log_level: "CRITICAL",
      log_dir: "",
      drain_timeout: 2,
      ...spec.general,
    },
    networking: { ...FAST_NET, ...spec.networking },
  };
}

const cores = new Set<PluginCore>();

/** A started node in this process; closed by {@link cleanup}. */
export async function startNode(spec: NodeSpec): Promise<PluginCore> {
  const core = new PluginCore(nodeConfig(spec));
  cores.add(core);
  await core.start();
  return core;
}

/** `127.0.0.1:<port>` of a started node. */
export function addr(core: PluginCore | { port: number | undefined }): string {
  const port = core.port;
  if (!port) throw new Error("the node has no port");
  return `127.0.0.1:${port}`;
}

export function base(core: PluginCore | { port: number | undefined }): string {
  return `http://${addr(core)}`;
}

/** Closes a node started by {@link startNode} early. */
export async function closeNode(core: PluginCore): Promise<void> {
  cores.delete(core);
  await core.close();
}

// ---------------------------------------------------------------------------------- children

export interface ChildNode {
  proc: ChildProcess;
  pid: number;
  port: number;
  hostname: string;
  /** Lines the child's plugins printed as `MARK <json>`. */
  marks: unknown[];
  /** Resolves when a mark satisfying `match` has been printed (also one printed earlier). */
  mark(match: (value: unknown) => boolean, timeoutMs?: number): Promise<unknown>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

const children = new Set<ChildNode>();

/**
 * Starts a node in a child process running fixtures/node-proc.mjs with `config`; resolves once
 * it listens, with `env` added to its environment. The child prints `READY <json>` and plugin
 * marks on stdout.
 */
export function spawnNode(
  config: ConfigObject,
  timeoutMs = 10_000,
  env: Record<string, string> = {},
): Promise<ChildNode> {
  // AIO_CHILD lets plugin code shared with in-process nodes print marks only in a child.
  const proc = spawn(process.execPath, [NODE_SCRIPT, JSON.stringify(config)], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...env, AIO_CHILD: "1" },
  });
  let err = "";
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (chunk: string) => {
    err += chunk;
    if (err.length > 100_000) err = err.slice(-50_000);
  });
  const marks: unknown[] = [];
  const waiters = new Set<{ match: (v: unknown) => boolean; resolve: (v: unknown) => void }>();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return new Promise<ChildNode>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`the child node did not start within ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    let buffer = "";
    proc.stdout?.setEncoding("utf8");
    proc.stdout?.on("data", (chunk: string) => {
      buffer += chunk;
      for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.startsWith("READY ")) {
          clearTimeout(timer);
          const ready = JSON.parse(line.slice(6)) as { port: number; hostname: string };
          const child: ChildNode = {
            proc,
            pid: proc.pid as number,
            port: ready.port,
            hostname: ready.hostname,
            marks,
            exited,
            stderr: () => err,
            mark(match, ms = 5000) {
              const found = marks.find(match);
              if (found !== undefined) return Promise.resolve(found);
              return new Promise((res, rej) => {
                const waiter = {
                  match,
                  resolve: (v: unknown) => {
                    clearTimeout(t);
                    res(v);
                  },
                };
                const t = setTimeout(() => {
                  waiters.delete(waiter);
                  rej(
                    new Error(`no matching mark within ${ms} ms; marks: ${JSON.stringify(marks)}`),
                  );
                }, ms);
                waiters.add(waiter);
              });
            },
          };
          children.add(child);
          resolve(child);
        } else if (line.startsWith("FAILED ")) {
          clearTimeout(timer);
          reject(new Error(`the child node failed to start: ${line.slice(7)}`));
        } else if (line.startsWith("MARK ")) {
          const value = JSON.parse(line.slice(5)) as unknown;
          marks.push(value);
          for (const w of [...waiters]) {
            if (w.match(value)) {
              waiters.delete(w);
              w.resolve(value);
            }
          }
        }
      }
    });
    proc.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the child node exited (${code ?? signal}) before it was ready: ${err}`));
    });
  });
}

/** Plugin code (in a child node): prints a mark the test can await. */
export function markCode(expr: string): string {
  return `process.stdout.write("MARK " + JSON.stringify(${expr}) + "\\n");`;
}

/** SIGKILLs a child node (by its pid) and waits for it to exit. */
export async function killChild(child: ChildNode, signal: NodeJS.Signals = "SIGKILL") {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill(signal);
  if (signal === "SIGKILL" || signal === "SIGTERM") {
    await child.exited;
    children.delete(child);
  }
}

// ---------------------------------------------------------------------------------- cleanup

/** Closes every node and child started so far, and removes the temp folders; for afterAll. */
export async function cleanup(): Promise<void> {
  await closeAll();
  removeTempDirs();
}

/** Closes every node and child started so far, keeping the temp folders; for afterEach. */
export async function closeAll(): Promise<void> {
  const closing = [...cores].map((core) => core.close().catch(() => undefined));
  cores.clear();
  for (const child of children) {
    if (child.proc.exitCode === null && child.proc.signalCode === null) {
      child.proc.kill("SIGCONT");
      child.proc.kill("SIGKILL");
    }
  }
  await Promise.all([...closing, ...[...children].map((c) => c.exited)]);
  children.clear();
}

// ---------------------------------------------------------------------------------- logs

export interface LogLine {
  level: number;
  msg: string;
}

/** The lines of a node's JSON log file (read it after the node closed, when it is complete). */
export function logLines(file: string): LogLine[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as LogLine);
}

/** pino's levels: WARN and up, ERROR and up. */
export const WARN = 40;
export const ERROR = 50;

// ---------------------------------------------------------------------------------- waiting

/** The node `hostname` as `core` knows it. */
export function nodeNamed(core: PluginCore, hostname: string): NodeInfo | undefined {
  return core.nodes().find((n) => n.hostname === hostname);
}

/** Waits until `core` knows `hostname` as alive (and, if given, `check` holds for it). */
export function waitForNode(
  core: PluginCore,
  hostname: string,
  check: (node: NodeInfo) => boolean = () => true,
  timeoutMs = 5000,
): Promise<NodeInfo> {
  return waitFor(
    () => {
      const node = core.nodes().find((n) => n.hostname === hostname && n.alive && check(n));
      return node;
    },
    `${core.hostname} to see node ${hostname}`,
    timeoutMs,
  );
}

/** The next `event` on `core` for the node `hostname`. */
export function nodeEvent(
  core: PluginCore,
  event: "node:up" | "node:down",
  hostname: string,
  timeoutMs = 5000,
): Promise<NodeInfo> {
  return new Promise((resolve, reject) => {
    const listener = (node: NodeInfo) => {
      if (node.hostname !== hostname) return;
      clearTimeout(timer);
      core.off(event, listener);
      resolve(node);
    };
    const timer = setTimeout(() => {
      core.off(event, listener);
      reject(new Error(`no ${event} for ${hostname} on ${core.hostname} within ${timeoutMs} ms`));
    }, timeoutMs);
    core.on(event, listener);
  });
}

/** Awaits `work` and returns the RequestError it rejects with (fails if it resolves). */
export async function rejection(work: Promise<unknown> | (() => unknown)): Promise<RequestError> {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (error) {
    expect(error).toBeInstanceOf(RequestError);
    return error as RequestError;
  }
  throw new Error("expected the call to fail");
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/**
 * Waits until `core` has heard from `hostname` `n` more times (its lastSeen advanced n times):
 * proof that heartbeats ran, for asserting that something did NOT happen meanwhile.
 */
export async function heartbeats(core: PluginCore, hostname: string, n = 3): Promise<void> {
  for (let i = 0; i < n; i++) {
    const before = nodeNamed(core, hostname)?.lastSeen ?? 0;
    await waitFor(
      () => (nodeNamed(core, hostname)?.lastSeen ?? 0) > before,
      `${core.hostname} to hear from ${hostname} again`,
    );
  }
}
