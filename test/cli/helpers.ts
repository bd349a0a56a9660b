/**
 * Fixtures for the command-line tests: they run the built `aio` (dist/cli/main.js) in child
 * processes, as a user would, in temporary project folders, against nodes started with
 * `aio run` in the background.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { removeTempDirs, tempDir, writeTree } from "../support.js";

export { removeTempDirs, tempDir, writeTree };

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = join(REPO_ROOT, "dist", "cli", "main.js");

// ---------------------------------------------------------------------------------- files

/**
 * Links the package (this repository) and what a user's project has beside it into
 * `<dir>/node_modules`, as `npm install aio-assistant-core` would.
 */
export function linkPackage(dir: string): void {
  mkdirSync(join(dir, "node_modules", "@types"), { recursive: true });
  symlinkSync(REPO_ROOT, join(dir, "node_modules", "aio-assistant-core"), "dir");
  symlinkSync(join(REPO_ROOT, "node_modules", "tsx"), join(dir, "node_modules", "tsx"), "dir");
  symlinkSync(
    join(REPO_ROOT, "node_modules", "@types", "node"),
    join(dir, "node_modules", "@types", "node"),
    "dir",
  );
}

/**
 * `Calc`, the plugin most tests call: remote-callable, with every kind of endpoint, one that
 * throws, one that takes its time, and a console.log at load (which must never reach the
 * stdout of `aio call`).
 */
export const CALC_PLUGIN = {
  "plugins/Calc/plugin.ts": `import { Plugin } from "aio-assistant-core";

export class Calc extends Plugin {
  override onLoad(): void {
    console.log("Calc says hello on stdout");
  }
  add(a: number, b: number): number {
    return a + b;
  }
  echo(value: unknown): unknown {
    return value;
  }
  async slow(ms: number): Promise<string> {
    this.logger.warn(\`slow call of \${ms} ms started\`);
    await new Promise((resolve) => setTimeout(resolve, ms));
    return "done";
  }
  fail(message: string): never {
    throw new RangeError(message);
  }
  *count(n: number) {
    for (let i = 1; i <= n; i++) yield i;
  }
  async *ticks(n: number, ms: number) {
    for (let i = 0; i < n; i++) {
      await new Promise((resolve) => setTimeout(resolve, ms));
      yield { tick: i };
    }
  }
}
`,
  "plugins/Calc/plugin_config.yml": `description: Arithmetic for the CLI tests
version: 1.2.3
remote: true
arguments:
endpoints:
  - internal_name: add
    access_name: add
    remote: true
    description: Adds two numbers
    arguments:
      - name: a
        type: number
        required: true
      - name: b
        type: number
        default: 1
  - internal_name: echo
    access_name: echo
    remote: true
    arguments:
      - name: value
        type: any
  - internal_name: slow
    access_name: slow
    remote: true
    arguments:
      - name: ms
        type: int
        required: true
  - internal_name: fail
    access_name: fail
    remote: true
    arguments:
      - name: message
        type: str
        default: boom
  - internal_name: count
    access_name: count
    remote: true
    arguments:
      - name: n
        type: int
        default: 3
  - internal_name: ticks
    access_name: ticks
    remote: true
    arguments:
      - name: n
        type: int
        default: 3
      - name: ms
        type: int
        default: 10
`,
};

export interface ConfigSpec {
  plugins?: string[];
  /** Extra YAML lines under `plugins:` (raw entries). */
  extraEntries?: string;
  networking?: string;
  general?: string;
}

/** config.yml text: the named plugins from ./plugins, quiet, no log file. */
export function configYaml(spec: ConfigSpec = {}): string {
  const entries = (spec.plugins ?? ["Calc"]).map(
    (name) => `  - name: ${name}\n    enabled: true\n`,
  );
  return `plugins:\n${entries.join("")}${spec.extraEntries ?? ""}general:\n  plugin_package: plugins\n  console_log_level: WARNING\n  log_dir: ""\n${spec.general ?? ""}${spec.networking ? `networking:\n${spec.networking}` : ""}`;
}

/** A temporary project: Calc, a package.json making it ESM, and config.yml. */
export function project(files: Record<string, string> = {}, config: ConfigSpec = {}): string {
  const dir = tempDir();
  writeTree(dir, {
    "package.json": '{ "name": "cli-test-project", "type": "module" }\n',
    ...CALC_PLUGIN,
    "config.yml": configYaml(config),
    ...files,
  });
  return dir;
}

// ---------------------------------------------------------------------------------- running aio

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
}

/** The environment `aio` runs with: no secret, no colors forced, unless a test sets them. */
export function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.AIO_SECRET;
  delete env.NO_COLOR;
  delete env.FORCE_COLOR;
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Runs `aio <args>` to its end. */
export function aio(args: string[], options: RunOptions = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? tmpdir(),
      env: cliEnv(options.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`aio ${args.join(" ")} did not finish in time\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

// ---------------------------------------------------------------------------------- nodes

/** A node started with `aio run` in the background. */
export class RunningNode {
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(child: ChildProcess) {
    this.child = child;
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stdout += chunk;
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );
  }

  /** Resolves when stdout (or stderr) contains `text` (or matches it); rejects after `ms`. */
  async waitFor(
    text: string | RegExp,
    ms = 15_000,
    stream: "stdout" | "stderr" = "stdout",
  ): Promise<void> {
    const deadline = Date.now() + ms;
    const found = () =>
      typeof text === "string" ? this[stream].includes(text) : text.test(this[stream]);
    while (!found()) {
      if (Date.now() > deadline || this.child.exitCode !== null) {
        throw new Error(
          `aio run: no ${String(text)} in its output\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** The port from the summary's "Listening on http://…:PORT". */
  get port(): number {
    const match = /Listening on https?:\/\/[^\s]+:(\d+)/.exec(this.stdout);
    if (!match) throw new Error(`no port in:\n${this.stdout}`);
    return Number(match[1]);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Sends `signal` and waits for the exit. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<{ code: number | null }> {
    if (this.child.exitCode === null) this.child.kill(signal);
    return this.exited;
  }
}

const running = new Set<RunningNode>();

/** Starts `aio run <config>` and waits for its "Press Ctrl-C to stop." */
export async function startNode(
  cwd: string,
  args: string[] = [],
  env: Record<string, string | undefined> = {},
): Promise<RunningNode> {
  const child = spawn(process.execPath, [CLI, "run", ...args], {
    cwd,
    env: cliEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const node = new RunningNode(child);
  running.add(node);
  void node.exited.then(() => running.delete(node));
  await node.waitFor("Press Ctrl-C to stop.");
  return node;
}

export async function stopNodes(): Promise<void> {
  await Promise.all([...running].map((node) => node.stop("SIGKILL")));
}

// ---------------------------------------------------------------------------------- tmux

/** Whether `command` is installed (tmux for the console test, script for a pseudo-terminal). */
export function installed(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * A terminal for interactive tests: a tmux server of its own (its own socket), one window of
 * 160×48, running `command`.
 */
export class Terminal {
  readonly #socket = `aio-cli-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  constructor(command: string, cwd: string) {
    this.#tmux("new-session", "-d", "-s", "t", "-x", "160", "-y", "48", "-c", cwd, command);
  }

  #tmux(...args: string[]): string {
    return execFileSync("tmux", ["-L", this.#socket, "-f", "/dev/null", ...args], {
      encoding: "utf8",
    });
  }

  /** What the screen shows now (with `escapes`, color codes included). */
  screen(escapes = false): string {
    return this.#tmux("capture-pane", "-p", "-t", "t", "-S", "-200", ...(escapes ? ["-e"] : []));
  }

  /** Types keys: text as it is, tmux key names (Tab, Enter, C-c) as keys. */
  keys(...keys: string[]): void {
    this.#tmux("send-keys", "-t", "t", ...keys);
  }

  type(text: string): void {
    this.#tmux("send-keys", "-t", "t", "-l", text);
  }

  /** Resolves when the screen shows `text` `times` times; rejects after `ms`. */
  async waitFor(text: string | RegExp, ms = 15_000, times = 1): Promise<string> {
    const deadline = Date.now() + ms;
    while (true) {
      const screen = this.screen();
      const count =
        typeof text === "string"
          ? screen.split(text).length - 1
          : (screen.match(new RegExp(text.source, `${text.flags.replace("g", "")}g`)) ?? []).length;
      if (count >= times) return screen;
      if (Date.now() > deadline) {
        throw new Error(`the terminal does not show ${String(text)}:\n${screen}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  close(): void {
    try {
      this.#tmux("kill-server");
    } catch {
      // Gone already.
    }
  }
}

// ---------------------------------------------------------------------------------- MCP

/** The MCP SDK's client, connected over stdio to `aio mcp <args>` run in `dir`. */
export async function mcpOverStdio(
  dir: string,
  args = ["--config", "config.yml"],
  env: Record<string, string> = {},
): Promise<Client> {
  const client = new Client({ name: "aio-test", version: "1.0.0" });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [CLI, "mcp", ...args],
      cwd: dir,
      env: cliEnv(env) as Record<string, string>,
      stderr: "ignore",
    }),
  );
  return client;
}
