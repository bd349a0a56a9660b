/**
 * `aio console`: an interactive session with a node, in this process (`--config`) or running
 * elsewhere (`--node`): manage plugins, look at them, call them. Line editing, history (kept
 * in ~/.aio_history) and Tab completion of commands, plugin names and endpoint names on a
 * terminal; one command a line from a pipe.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import type { PluginInfo } from "../core/types.js";
import { ConsoleError } from "../errors.js";
import type { AdminAction } from "../net/server.js";
import { parseArgs } from "./call.js";
import { colorsFor, describeError, EXIT, json, note, out, paint, safe, table } from "./output.js";
import {
  argumentList,
  endpointTable,
  nodeTable,
  pluginTable,
  subscriptionTable,
} from "./tables.js";
import { type Target, type TargetOptions, withTarget } from "./target.js";

interface Command {
  usage: string;
  help: string;
  /** What the word after the command is: a plugin name, a command name, or nothing. */
  completes?: "plugin" | "command";
}

export const COMMANDS: Record<string, Command> = {
  list: { usage: "list", help: "the plugins: version, state, load time, isolation" },
  info: {
    usage: "info <plugin>",
    help: "one plugin in detail, with its endpoints",
    completes: "plugin",
  },
  endpoints: {
    usage: "endpoints <plugin>",
    help: "a plugin's endpoints and their arguments",
    completes: "plugin",
  },
  status: { usage: "status", help: "the node: name, address, plugins by state, other nodes" },
  nodes: { usage: "nodes", help: "the other nodes this node knows" },
  load: {
    usage: "load <plugin> [path]",
    help: "load a plugin (from config.yml, or a folder in-process); enable it next",
    completes: "plugin",
  },
  enable: {
    usage: "enable <plugin>",
    help: "enable a loaded or disabled plugin: calls reach it",
    completes: "plugin",
  },
  disable: {
    usage: "disable <plugin>",
    help: "disable a plugin: new calls are refused, calls in flight finish",
    completes: "plugin",
  },
  reload: {
    usage: "reload <plugin>",
    help: "load the plugin's code afresh and swap it in; no call is lost",
    completes: "plugin",
  },
  pop: { usage: "pop <plugin>", help: "unload a plugin", completes: "plugin" },
  purge: { usage: "purge", help: "unload every plugin" },
  call: {
    usage: "call <plugin> <method> [args-json]",
    help: "call a function endpoint; prints the result as JSON",
    completes: "plugin",
  },
  stream: {
    usage: "stream <plugin> <method> [args-json]",
    help: "call a generator endpoint; prints one JSON line per item",
    completes: "plugin",
  },
  publish: {
    usage: "publish <topic> [args-json]",
    help: "publish to a topic; prints how many subscribers got it",
  },
  subscribe: {
    usage: "subscribe <pattern> [count]",
    help: "print what is published to matching topics, until Ctrl-C (or count messages)",
  },
  topics: { usage: "topics", help: "who subscribes to what, on which node" },
  help: { usage: "help [command]", help: "this list, or one command's", completes: "command" },
  exit: { usage: "exit", help: "leave the console (also: quit, Ctrl-D)" },
};
const ALIASES: Record<string, string> = { quit: "exit", ls: "list", "?": "help" };

const HISTORY_SIZE = 500;

function historyFile(): string {
  return process.env.AIO_HISTORY_FILE || join(homedir(), ".aio_history");
}

/** Past lines, most recent first, as readline takes them. */
function loadHistory(file: string): string[] {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean).slice(-HISTORY_SIZE).reverse();
  } catch {
    return [];
  }
}

/** `call Plugin method {"a": 1}` → ["call", "Plugin", "method"] and the rest, `{"a": 1}`. */
export function splitLine(line: string, words: number): { words: string[]; rest: string } {
  const found: string[] = [];
  let rest = line.trim();
  while (found.length < words && rest !== "") {
    const match = /^(\S+)\s*/.exec(rest) as RegExpExecArray;
    found.push(match[1] as string);
    rest = rest.slice(match[0].length);
  }
  return { words: found, rest };
}

export class ConsoleSession {
  readonly #target: Target;
  readonly #color: boolean;
  #plugins: string[] = [];
  readonly #endpoints = new Map<string, string[]>();
  /** The command running now, if any: Ctrl-C aborts it. */
  #running: AbortController | undefined;

  constructor(target: Target, color: boolean) {
    this.#target = target;
    this.#color = color;
  }

  get running(): AbortController | undefined {
    return this.#running;
  }

  /** Names for completion, refreshed after every command. */
  async refresh(): Promise<void> {
    try {
      this.#plugins = (await this.#target.plugins()).map((p) => p.name);
    } catch {
      // Completion goes without; the command that needs them reports the error.
    }
    this.#endpoints.clear();
  }

  async #endpointNames(plugin: string): Promise<string[]> {
    let names = this.#endpoints.get(plugin);
    if (!names) {
      names = (await this.#target.endpoints(plugin)).map((e) => e.access_name);
      this.#endpoints.set(plugin, names);
    }
    return names;
  }

  /** readline's completer: the candidates for the word under the cursor. */
  async complete(line: string): Promise<[string[], string]> {
    const words = line.trimStart().split(/\s+/);
    const current = words[words.length - 1] ?? "";
    const command = ALIASES[words[0] ?? ""] ?? words[0] ?? "";
    let candidates: string[] = [];
    try {
      if (words.length === 1) {
        candidates = Object.keys(COMMANDS);
      } else if (words.length === 2 && COMMANDS[command]?.completes === "plugin") {
        if (this.#plugins.length === 0) await this.refresh();
        candidates = this.#plugins;
      } else if (words.length === 2 && COMMANDS[command]?.completes === "command") {
        candidates = Object.keys(COMMANDS);
      } else if (words.length === 3 && (command === "call" || command === "stream")) {
        candidates = await this.#endpointNames(words[1] as string);
      }
    } catch {
      candidates = [];
    }
    const matches = candidates.filter((c) => c.startsWith(current));
    // A single match gets a space after it, ready for the next word.
    return [matches.length === 1 ? [`${matches[0]} `] : matches, current];
  }

  /** Runs one line; false when it failed. Throws nothing: errors are shown. */
  async run(line: string): Promise<boolean> {
    const { words, rest } = splitLine(line, 1);
    const name = words[0];
    if (name === undefined || name.startsWith("#")) return true;
    const command = ALIASES[name] ?? name;
    const controller = new AbortController();
    this.#running = controller;
    try {
      await this.#dispatch(command, rest, controller.signal);
      return true;
    } catch (error) {
      note(paint(describeError(error), "red", this.#color));
      return false;
    } finally {
      this.#running = undefined;
      if (command !== "help") await this.refresh();
    }
  }

  async #dispatch(command: string, rest: string, signal: AbortSignal): Promise<void> {
    const target = this.#target;
    const spec = COMMANDS[command];
    if (!spec) throw new ConsoleError(`unknown command "${command}"; type help for the list`);
    const { words: args, rest: remainder } = splitLine(rest, 2);
    const plugin = () => {
      if (!args[0]) throw new ConsoleError(`usage: ${spec.usage}`);
      return args[0];
    };
    switch (command) {
      case "help":
        return this.#help(args[0]);
      case "exit":
        return;
      case "list":
        return out(pluginTable(await target.plugins(), this.#color));
      case "nodes":
        return out(nodeTable(await target.nodes(), this.#color));
      case "endpoints":
        return out(endpointTable(await target.endpoints(plugin())));
      case "info":
        return this.#info(plugin());
      case "status":
        return this.#status();
      case "purge":
        await target.act("purge");
        return out("Every plugin is unloaded.");
      case "load":
      case "enable":
      case "disable":
      case "reload":
      case "pop": {
        const name = plugin();
        const path =
          command === "load" && args[1]
            ? `${args[1]}${remainder ? ` ${remainder}` : ""}`
            : undefined;
        await target.act(command as AdminAction, name, path);
        return this.#reportState(name);
      }
      case "publish": {
        const { words, rest: argsText } = splitLine(rest, 1);
        if (!words[0]) throw new ConsoleError(`usage: ${spec.usage}`);
        const args = parseArgs(argsText === "" ? undefined : argsText);
        const count = await target.notify(words[0], args, { signal });
        return out(`${count} subscriber${count === 1 ? "" : "s"} got it`);
      }
      case "subscribe": {
        const pattern = args[0];
        const limit = args[1] === undefined ? Number.POSITIVE_INFINITY : Number(args[1]);
        if (!pattern || !(limit > 0)) throw new ConsoleError(`usage: ${spec.usage}`);
        let seen = 0;
        note(
          `Subscribed to ${pattern}${Number.isFinite(limit) ? ` for ${limit} message(s)` : ""}; Ctrl-C stops.`,
        );
        for await (const message of target.watch(pattern, signal)) {
          out(
            `${safe(message.topic)} ${json(message.args, 0)}  (${safe(message.publisher)} on ${safe(message.publisherHost)})`,
          );
          if (++seen >= limit) break;
        }
        return;
      }
      case "topics":
        return out(subscriptionTable(await target.subscriptions()));
      case "call":
      case "stream": {
        const { words: call, rest: argsText } = splitLine(rest, 2);
        if (call.length < 2) throw new ConsoleError(`usage: ${spec.usage}`);
        const args = parseArgs(argsText === "" ? undefined : argsText);
        const [pluginName, method] = call as [string, string];
        if (command === "call") {
          return out(json(await target.execute(pluginName, method, args, { signal })));
        }
        for await (const item of target.stream(pluginName, method, args, { signal })) {
          out(json(item, 0));
        }
        return;
      }
    }
  }

  #help(command: string | undefined): void {
    if (command) {
      const spec = COMMANDS[ALIASES[command] ?? command];
      if (!spec) throw new ConsoleError(`unknown command "${command}"; type help for the list`);
      out(`${spec.usage}\n  ${spec.help}`);
      return;
    }
    const rows = Object.values(COMMANDS).map((c) => [c.usage, c.help]);
    out(
      `${table(rows)}\n\nargs-json is JSON: [2, 3] positional, {"a": 2} named, 5 or "text" one argument.\nTab completes commands, plugin names and endpoint names; Ctrl-C stops a running call.`,
    );
  }

  async #reportState(name: string): Promise<void> {
    const info = (await this.#target.plugins()).find((p) => p.name === name);
    const state = info
      ? paint(info.state, info.state === "failed" ? "red" : "green", this.#color)
      : "removed";
    const hint =
      info === undefined
        ? ` (load ${name} brings it back)`
        : info.state === "loaded"
          ? ` (enable ${name} to serve calls)`
          : "";
    out(`${safe(name)} is now ${state}${hint}`);
    if (info?.state === "failed" && info.error) out(safe(info.error));
  }

  async #info(name: string): Promise<void> {
    const info = (await this.#target.plugins()).find((p) => p.name === name);
    if (!info)
      throw Object.assign(new Error(`No plugin named "${name}"`), { code: "PLUGIN_NOT_FOUND" });
    const endpoints = await this.#target.endpoints(name);
    const rows: string[][] = [
      ["name", safe(info.name)],
      ["version", safe(info.version) || "-"],
      ["state", info.state],
      ["description", safe(info.description) || "-"],
      ["uuid", info.uuid || "-"],
      ["remote", info.remote ? "yes" : "no"],
      ["isolation", info.isolation],
      ["path", safe(info.path)],
      ["load time", info.loadTimeMs === undefined ? "-" : `${Math.round(info.loadTimeMs)} ms`],
    ];
    if (info.error) rows.push(["error", safe(info.error)]);
    const calls = endpoints.map((e) => `  ${e.access_name}(${argumentList(e)})  ${e.kind}`);
    out(`${table(rows)}\n\nendpoints:\n${calls.join("\n") || "  none"}`);
  }

  async #status(): Promise<void> {
    const [hostname, plugins, nodes] = await Promise.all([
      this.#target.hostname(),
      this.#target.plugins(),
      this.#target.nodes(),
    ]);
    const counts = new Map<string, number>();
    for (const p of plugins) counts.set(p.state, (counts.get(p.state) ?? 0) + 1);
    const byState = [...counts].map(([state, n]) => `${n} ${state}`).join(", ") || "none";
    const alive = nodes.filter((n) => n.alive).length;
    out(
      table([
        ["node", safe(hostname)],
        ["via", this.#target.where],
        ["address", this.#target.address() ?? "networking off"],
        ["plugins", `${plugins.length} (${byState})`],
        ["other nodes", `${nodes.length} known, ${alive} up`],
      ]),
    );
  }
}

function failedPlugins(plugins: PluginInfo[]): string[] {
  return plugins.filter((p) => p.state === "failed").map((p) => p.name);
}

/** Runs the session until `exit`, Ctrl-D or the end of piped input; returns the exit code. */
export async function consoleCommand(options: TargetOptions): Promise<number> {
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
  return withTarget(options, async (target) => {
    const color = colorsFor(process.stdout);
    const session = new ConsoleSession(target, color);
    const hostname = await target.hostname();
    await session.refresh();
    if (interactive) {
      const failed = failedPlugins(await target.plugins());
      out(
        `Connected to ${target.where} ("${safe(hostname)}"). Type help for commands; Tab completes; Ctrl-D or exit leaves.` +
          (failed.length
            ? `\n${paint(`Failed plugins: ${failed.join(", ")} (info <plugin> says why)`, "red", color)}`
            : ""),
      );
    }
    const failures = await readCommands(session, interactive, hostname, color);
    return !interactive && failures > 0 ? EXIT.FAILED : EXIT.OK;
  });
}

/** Reads and runs lines until exit, Ctrl-D or the end of input; returns how many failed. */
async function readCommands(
  session: ConsoleSession,
  interactive: boolean,
  hostname: string,
  color: boolean,
): Promise<number> {
  const file = historyFile();
  const rl: Interface = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: interactive,
    prompt: interactive ? paint(`aio ${safe(hostname)}> `, "bold", color) : "",
    historySize: HISTORY_SIZE,
    history: interactive ? loadHistory(file) : [],
    removeHistoryDuplicates: true,
    completer: (line: string, callback: (error: null, result: [string[], string]) => void) => {
      session.complete(line).then((result) => callback(null, result));
    },
  });

  // Ctrl-C: stops the running command; on an empty prompt, twice in a row leaves.
  let armed = false;
  const interrupt = () => {
    const running = session.running;
    if (running) {
      running.abort();
      return;
    }
    if (!interactive || armed) {
      rl.close();
      return;
    }
    armed = true;
    rl.write(null, { ctrl: true, name: "u" });
    out("\n(Ctrl-C again, Ctrl-D or exit to leave)");
    rl.prompt();
  };
  rl.on("SIGINT", interrupt);
  process.on("SIGINT", interrupt);
  process.on("SIGTERM", () => rl.close());

  let failures = 0;
  rl.prompt();
  try {
    for await (const line of rl) {
      armed = false;
      const command = splitLine(line, 1).words[0];
      if (interactive && line.trim() !== "") {
        try {
          appendFileSync(file, `${line}\n`, { mode: 0o600 });
        } catch {
          // No history file; the session works without it.
        }
      }
      if (command === "exit" || command === "quit") break;
      if (!(await session.run(line))) failures++;
      rl.prompt();
    }
  } finally {
    rl.close();
    if (interactive) out("");
  }
  return failures;
}
