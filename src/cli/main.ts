#!/usr/bin/env node
/**
 * The `aio` command line: run a node, call its plugins, look at what runs, make and check
 * plugins, and manage a node interactively. docs/cli.md documents every command.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import type { LogLevelName } from "../config/types.js";
import { UsageError } from "../errors.js";
import { packageVersion } from "../version.js";
import type { CallCommandOptions } from "./call.js";
import type { DashboardOptions } from "./dashboard/server.js";
import type { EndpointsOptions, ListOptions, NodesOptions, PublishOptions } from "./list.js";
import type { McpOptions } from "./mcp.js";
import { describeError, EXIT, exitWhenFlushed, note, out, reserveStdout } from "./output.js";
import type { TargetOptions } from "./target.js";
import type { TypesOptions } from "./types.js";

const LEVELS: readonly LogLevelName[] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];

function logLevel(value: string): LogLevelName {
  const level = value.toUpperCase();
  if (level === "WARN") return "WARNING";
  if (!(LEVELS as readonly string[]).includes(level)) {
    throw new InvalidArgumentError(`expected one of ${LEVELS.join(", ")} (any case)`);
  }
  return level as LogLevelName;
}

function milliseconds(min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > 2 ** 31 - 1) {
      throw new InvalidArgumentError(
        `expected a whole number of milliseconds${min > 0 ? ", at least 1" : ""}`,
      );
    }
    return Number(value);
  };
}

const HINT = "(add --help for usage)";

/** --config F | --node URL, as every command that talks to a node takes them. */
function targetOptions(command: Command, logDefault = "WARNING"): Command {
  return command
    .addOption(
      new Option(
        "-c, --config <file>",
        "start a core in this process from this config.yml (default: ./config.yml, else the bundled example)",
      ).conflicts("node"),
    )
    .addOption(
      new Option(
        "-n, --node <url>",
        "talk to a running node instead, e.g. http://127.0.0.1:2510 (signed with AIO_SECRET when it is set)",
      ).conflicts("config"),
    )
    .addOption(logLevelOption(`console log level of a core started here (default: ${logDefault})`));
}

function logLevelOption(description: string): Option {
  return new Option(
    "-l, --log-level <level>",
    `${description}: DEBUG, INFO, WARNING, ERROR or CRITICAL`,
  ).argParser(logLevel);
}

/** `--wait`: in-process, how long discovery runs before the command does its work. */
function waitOption(): Option {
  return new Option(
    "-w, --wait <ms>",
    "in-process: wait this long for nodes to be found (default: 1500 on the channel, 0 over NATS)",
  ).argParser(milliseconds(0));
}

function jsonOption(): Option {
  return new Option("--json", "print JSON instead of a table, for scripts");
}

/** An action whose returned number is the exit code; undefined keeps the process running. */
function action<A extends unknown[]>(fn: (...args: A) => unknown) {
  return async (...args: A): Promise<void> => {
    const code = await fn(...args);
    if (typeof code === "number") await exitWhenFlushed(code);
  };
}

// A reader that went away (`aio … | head`) is not an error of the command: what it would still
// print is dropped, and the command ends as it would have (`aio stream` also stops its stream).
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
});

const program = new Command()
  .name("aio")
  .description("AIO Core: run plugin nodes, call their plugins, make and check plugins")
  .version(packageVersion(), "-V, --version", "print the version")
  .helpOption("-h, --help", "show help")
  .helpCommand("help [command]", "show help for a command")
  .exitOverride()
  .showHelpAfterError(HINT)
  .configureHelp({ sortSubcommands: false, showGlobalOptions: false })
  .addHelpText(
    "after",
    `
Exit codes:
  0    success
  1    the command failed: a call's error (printed as CODE: message), problems found by check,
       a folder that exists already, a node that cannot be reached
  2    usage error: unknown command or option, missing argument, invalid JSON or option value
  130  interrupted: a second Ctrl-C/SIGTERM while aio run closes, or Ctrl-C during a call

Environment:
  AIO_SECRET        the shared secret of the nodes; --node requests are signed with it
  NO_COLOR          set (non-empty): no colors
  AIO_HISTORY_FILE  the console's history file (default: ~/.aio_history)

Examples:
  aio run                                   start ./config.yml (else the bundled example)
  aio call PluginB calculate_square 6       36
  aio stream InteropTarget it_async_gen '{"n": 2}'
  aio plugins --node http://127.0.0.1:2510
  aio new Greeter && aio check

Documentation: docs/cli.md`,
  );

program
  .command("run")
  .summary("start a node and keep it running until Ctrl-C")
  .description(
    "Start a node: load and enable the plugins of the config, start networking if it is enabled, and print what runs (plugins with version, state, load time and isolation; failures with their reasons; the address it listens on; the nodes found). Runs until SIGINT or SIGTERM, then closes gracefully: calls in flight finish (within general.drain_timeout), plugins are disabled, the log is flushed, exit 0. A second signal exits at once (130).",
  )
  .argument("[config]", "config.yml (default: ./config.yml, else the bundled example)")
  .addOption(logLevelOption("console log level, instead of general.console_log_level"))
  .addHelpText("after", "\nExamples:\n  aio run\n  aio run deploy/config.yml --log-level debug")
  .action(
    action(async (config: string | undefined, options: { logLevel?: LogLevelName }) =>
      (await import("./run.js")).runCommand(config, options),
    ),
  );

for (const kind of ["call", "stream"] as const) {
  const command = program
    .command(kind)
    .summary(
      kind === "call"
        ? "call a plugin's endpoint and print the result as JSON"
        : "call a generator endpoint and print each item as a JSON line",
    )
    .description(
      kind === "call"
        ? "Call a function endpoint (plain or async) and print its result as JSON on stdout. On failure: CODE: message on stderr, exit 1."
        : "Call a generator endpoint (plain or async) and print each item as one JSON line on stdout, as it comes. On failure: CODE: message on stderr, exit 1 (items before the failure are printed).",
    )
    .argument("<plugin>", "the plugin's name")
    .argument("<method>", "the endpoint's access_name")
    .argument(
      "[args-json]",
      'arguments as JSON: [2, 3] positional, {"a": 2} named, 5 or \'"text"\' one argument; none if left out',
    )
    .option(
      "--host <host>",
      "where the call may run: any, local, remote, or a node's hostname (default: any)",
    )
    .addOption(
      new Option("-t, --timeout <ms>", "fail with TIMEOUT after this many milliseconds").argParser(
        milliseconds(1),
      ),
    );
  targetOptions(command)
    .addHelpText(
      "after",
      kind === "call"
        ? `\nExamples:\n  aio call PluginB calculate_square 6\n  aio call InteropTarget it_sync_add '{"a": 2, "b": 3}' --timeout 2000\n  AIO_SECRET=… aio call PluginB calculate_square '[7]' --node http://10.0.0.5:2510`
        : `\nExamples:\n  aio stream InteropTarget it_async_gen '{"n": 3, "prefix": "x"}'\n  aio stream PluginA perform_operation_stream_ABC 3 --node http://127.0.0.1:2510 | head -2`,
    )
    .action(
      action(
        async (
          plugin: string,
          method: string,
          args: string | undefined,
          options: CallCommandOptions,
        ) => (await import("./call.js")).callCommand(kind, plugin, method, args, options),
      ),
    );
}

targetOptions(
  program
    .command("plugins")
    .summary("list the plugins of a node")
    .description(
      "List the plugins of a node: name, version, state, load time, isolation, remote; then why any failed.",
    )
    .addOption(jsonOption()),
)
  .addHelpText(
    "after",
    "\nExamples:\n  aio plugins\n  aio plugins --node http://127.0.0.1:2510 --json",
  )
  .action(
    action(async (options: ListOptions) => (await import("./list.js")).pluginsCommand(options)),
  );

targetOptions(
  program
    .command("nodes")
    .summary("list the other nodes a node knows")
    .description(
      "List the other nodes a node knows: hostname, address, up or down, when last seen, their plugins. In-process (--config), the core waits --wait milliseconds for discovery first.",
    )
    .addOption(jsonOption())
    .addOption(waitOption()),
)
  .addHelpText(
    "after",
    "\nExamples:\n  aio nodes --node http://127.0.0.1:2510\n  aio nodes --config config.yml --wait 5000 --json",
  )
  .action(
    action(async (options: NodesOptions) => (await import("./list.js")).nodesCommand(options)),
  );

targetOptions(
  program
    .command("endpoints")
    .summary("list the endpoints of every node, or of one plugin")
    .description(
      "Without a plugin: the endpoints of this node and every node it knows that it may call (node, plugin, endpoint, kind, tags, topic), filtered by --tag. With a plugin: its endpoints: access name, kind, arguments (? optional, = default), who may call it, description.",
    )
    .argument("[plugin]", "one plugin's name")
    .option("--tag <tag>", "only endpoints carrying this tag")
    .addOption(jsonOption())
    .addOption(waitOption()),
)
  .addHelpText(
    "after",
    "\nExamples:\n  aio endpoints --tag ai\n  aio endpoints PluginB\n  aio endpoints PluginB --node http://127.0.0.1:2510 --json",
  )
  .action(
    action(async (plugin: string | undefined, options: EndpointsOptions) =>
      (await import("./list.js")).endpointsCommand(plugin, options),
    ),
  );

targetOptions(
  program
    .command("types")
    .summary("write TypeScript declarations of the endpoints, for typed calls")
    .description(
      "Write declarations that make execute() and its kin accept only the plugins, endpoints and arguments the manifests declare, and type their results (from the plugins' own TypeScript, else the manifest's returns:, else unknown). From a config (nothing is run) or from a running node (--node: its endpoints and its peers'). Include the file in your tsconfig. See docs/typed-calls.md.",
    )
    .argument("[config]", "config.yml (default: ./config.yml)")
    .option("-o, --out <file>", "write to this file (else print)"),
)
  .addHelpText(
    "after",
    "\nExamples:\n  aio types -o aio-types.d.ts\n  AIO_SECRET=… aio types --node http://10.0.0.5:2510 -o aio-types.d.ts",
  )
  .action(
    action(async (config: string | undefined, options: TypesOptions) =>
      (await import("./types.js")).typesCommand(config, options),
    ),
  );

function portNumber(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) {
    throw new InvalidArgumentError("expected a port number, 0 to 65535 (0: any free port)");
  }
  return Number(value);
}

targetOptions(
  program
    .command("dashboard")
    .summary("a web page on 127.0.0.1 that shows and drives a node and the mesh it knows")
    .description(
      "Serve a dashboard on 127.0.0.1: nodes (up or down, last seen, round trip, transport), plugins (state, version, isolation, reloads, errors, with enable, disable and reload), endpoints, live calls/s and p50/p99 per endpoint, a form to call or stream any endpoint (with Stop), publish and watch topics, and the log as it is written. The secret stays in this process; the printed URL carries a per-run token. See docs/dashboard.md.",
    )
    .option("-p, --port <port>", "the port on 127.0.0.1 (default: any free port)", portNumber),
)
  .addHelpText(
    "after",
    "\nExamples:\n  aio dashboard --config config.yml\n  AIO_SECRET=… aio dashboard --node http://10.0.0.5:2510 --port 8080",
  )
  .action(
    action(async (options: DashboardOptions) =>
      (await import("./dashboard/server.js")).dashboardCommand(options),
    ),
  );

targetOptions(
  program
    .command("mcp")
    .summary("serve endpoints with a tag as Model Context Protocol tools over stdio")
    .description(
      "An MCP server over stdio for AI agents: every endpoint carrying the tag (default mcp), on this node and the nodes it knows, is a tool named Plugin.endpoint (host/Plugin.endpoint where two nodes serve it), its input the endpoint's named arguments. Logs go to stderr; stdout is the protocol. See docs/mcp.md.",
    )
    .option("--tag <tag>", "the tag that makes an endpoint a tool (default: mcp)")
    .option(
      "--token",
      "print the bearer token the config's node requires at /mcp (networking.mcp: true), and exit",
    ),
)
  .addHelpText(
    "after",
    "\nExamples:\n  aio mcp --config config.yml\n  AIO_SECRET=… aio mcp --node http://10.0.0.5:2510 --tag assistant\n  aio mcp --token --config config.yml    # for an MCP client of the node's /mcp",
  )
  .action(action(async (options: McpOptions) => (await import("./mcp.js")).mcpCommand(options)));

targetOptions(
  program
    .command("openapi")
    .summary("print the node's HTTP interface as OpenAPI 3.1")
    .description(
      "Print, as JSON, the OpenAPI 3.1 document a node serves at GET /openapi.json: POST /execute and POST /execute_stream with a request schema per endpoint other nodes may call, its arguments from the manifest.",
    ),
)
  .addHelpText(
    "after",
    "\nExamples:\n  aio openapi > openapi.json\n  AIO_SECRET=… aio openapi --node http://10.0.0.5:2510",
  )
  .action(
    action(async (options: TargetOptions) => (await import("./list.js")).openapiCommand(options)),
  );

targetOptions(
  program
    .command("publish")
    .summary("publish to a topic and print how many subscribers got it")
    .description(
      "Publish args (JSON) to a topic: every subscriber, on this node and the nodes it knows, gets it. Prints how many subscribers took it. With --node, only that node's subscribers (a client cannot make a node tell others).",
    )
    .argument("<topic>", "the topic, /-separated, without wildcards")
    .argument("[args-json]", "what to publish, as JSON; nothing if left out")
    .option("--host <host>", "which subscribers: any, local, remote, or a node's hostname")
    .addOption(waitOption()),
)
  .addHelpText(
    "after",
    `\nExamples:\n  aio publish sensor/kitchen/temperature 21.5\n  aio publish alerts/door '{"open": true}' --node http://127.0.0.1:2510`,
  )
  .action(
    action(async (topic: string, args: string | undefined, options: PublishOptions) =>
      (await import("./list.js")).publishCommand(topic, args, options),
    ),
  );

program
  .command("new")
  .summary("create a plugin folder that loads as it is")
  .description(
    "Create <dir>/<Name>/ with plugin.ts (a class extending Plugin: a function, an async function and a generator endpoint), plugin_config.yml declaring them, and <Name>.test.mts, a node:test test that passes as generated. Prints the entry to add to config.yml. Refuses to overwrite an existing folder (exit 1).",
  )
  .argument("<Name>", "the plugin's class name, a JavaScript identifier (e.g. Greeter)")
  .option("-d, --dir <dir>", "the folder to create it in", "plugins")
  .addHelpText(
    "after",
    "\nExamples:\n  aio new Greeter\n  aio new WeatherStation --dir plugins_test",
  )
  .action(
    action(async (name: string, options: { dir?: string }) =>
      (await import("./new.js")).newCommand(name, options),
    ),
  );

program
  .command("check")
  .summary("validate config.yml and every plugin, without starting anything")
  .description(
    "Validate config.yml and every plugin's manifest, import every plugin module (its top-level code runs; no plugin is constructed, onLoad does not run), and check that each endpoint's internal_name is a method of the plugin class. Prints every problem as file:line key: message and exits 1 if there is any; else a summary and exit 0.",
  )
  .argument("[config]", "config.yml (default: ./config.yml, else the bundled example)")
  .addOption(jsonOption().default(false))
  .addHelpText("after", "\nExamples:\n  aio check\n  aio check deploy/config.yml --json")
  .action(
    action(async (config: string | undefined, options: { json?: boolean }) =>
      (await import("./check.js")).checkCommand(config, options),
    ),
  );

program
  .command("secret")
  .summary("print a fresh random secret for networking.secret or AIO_SECRET")
  .description(
    "Print a new shared secret: 32 random bytes from the operating system's generator, base64url (43 characters), and nothing else. Give the same one to every node of a cluster, in networking.secret or the AIO_SECRET environment variable; see docs/security.md.",
  )
  .addHelpText(
    "after",
    '\nExamples:\n  aio secret\n  export AIO_SECRET="$(aio secret)"\n  aio secret > /etc/aio/secret && chmod 600 /etc/aio/secret',
  )
  .action(
    action(async () => {
      const { newSecret } = await import("../config/secret.js");
      out(`${newSecret()}\n`);
    }),
  );

targetOptions(
  program
    .command("console")
    .summary("an interactive session: manage plugins and call them")
    .description(
      "An interactive session with a node, in this process (--config) or running elsewhere (--node): load, enable, disable, reload, pop, purge, list, info, endpoints, status, nodes, call, stream, help, exit. Tab completes commands, plugin names and endpoint names; history is kept in ~/.aio_history (AIO_HISTORY_FILE). With piped input it runs one command a line, and exits 1 if any failed.",
    ),
)
  .addHelpText(
    "after",
    "\nExamples:\n  aio console\n  aio console --node http://127.0.0.1:2510\n  printf 'list\\ncall PluginB calculate_square 3\\n' | aio console --config config.yml",
  )
  .action(
    action(async (options: TargetOptions) =>
      (await import("./console.js")).consoleCommand(options),
    ),
  );

// Each command's module is imported when it runs: `aio --help` and the commands that talk to a
// running node do not load the runtime.

// Commands whose stdout is data: nothing but their output may reach it.
const DATA_COMMANDS = new Set([
  "call",
  "stream",
  "plugins",
  "nodes",
  "endpoints",
  "check",
  "secret",
]);
program.hook("preAction", (_program, command) => {
  if (DATA_COMMANDS.has(command.name())) reserveStdout();
});

try {
  await program.parseAsync();
} catch (error) {
  let code: number = EXIT.FAILED;
  if (error instanceof CommanderError) {
    // Help and version end with exit code 0; commander printed its own error otherwise.
    code = error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else if (error instanceof UsageError) {
    note(`error: ${error.message}\n${HINT}`);
    code = EXIT.USAGE;
  } else {
    note(describeError(error));
  }
  await exitWhenFlushed(code);
}
