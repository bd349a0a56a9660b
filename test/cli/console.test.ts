/**
 * `aio console`, in-process and against a running node: commands from a pipe, and an
 * interactive session in a real terminal (tmux): Tab completion of commands, plugin names and
 * endpoint names, errors shown without leaving the session. Also, on a terminal, colors unless
 * NO_COLOR is set.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  aio,
  CLI,
  cliEnv,
  installed,
  project,
  type RunningNode,
  removeTempDirs,
  startNode,
  stopNodes,
  Terminal,
  tempDir,
} from "./helpers.js";

const SECRET = "console-secret-0123456789";
const ESC = String.fromCharCode(27);
let dir: string;
let node: RunningNode;

beforeAll(async () => {
  dir = project({}, { networking: "  enabled: true\n  port: 0\n  bind: 127.0.0.1\n" });
  node = await startNode(dir, [], { AIO_SECRET: SECRET });
});

afterAll(async () => {
  await stopNodes();
  removeTempDirs();
});

describe.concurrent("aio console", () => {
  it("commands from a pipe, in-process: lists, calls, streams, manages plugins; a failed command makes exit 1", async () => {
    const input = [
      "list",
      "call Calc add [2, 5]",
      "stream Calc count 2",
      "disable Calc",
      "call Calc add [1]",
      "enable Calc",
      'call Calc add {"a": 1, "b": 1}',
      "frobnicate",
      "endpoints Calc",
      "exit",
      "list",
    ].join("\n");
    // A config without networking, so it does not compete with the node for nothing.
    const local = project();
    const r = await aio(["console", "--config", join(local, "config.yml")], { input });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(
      /^PLUGIN\s+VERSION\s+STATE\s+LOAD\s+ISOLATION\s+REMOTE\nCalc\s+1\.2\.3\s+enabled/m,
    );
    expect(r.stdout).toContain("\n7\n1\n2\nCalc is now disabled\nCalc is now enabled\n2\n");
    expect(r.stdout).toMatch(/ENDPOINT\s+KIND\s+ARGUMENTS/);
    expect(r.stderr).toMatch(/^PLUGIN_DISABLED: /m);
    expect(r.stderr).toMatch(/^USAGE: unknown command "frobnicate"; type help for the list$/m);
    // Nothing after exit ran: one plugin table only.
    expect(r.stdout.match(/^PLUGIN\s+VERSION/gm)).toHaveLength(1);
  });

  it("commands from a pipe, against a running node (--node, signed): status, pop, load, enable, call, info", async () => {
    const input = [
      "status",
      "pop Calc",
      "call Calc add [1, 2]",
      "load Calc",
      "enable Calc",
      "call Calc add [1, 2]",
      "info Calc",
      "nodes",
    ].join("\n");
    const r = await aio(["console", "--node", node.url], { input, env: { AIO_SECRET: SECRET } });
    expect(r.stderr).toMatch(/^PLUGIN_NOT_FOUND: /m);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /node\s+\S+\nvia\s+node http:\/\/127\.0\.0\.1:\d+\naddress\s+http:\/\/127\.0\.0\.1:\d+\nplugins\s+1 \(1 enabled\)\nother nodes\s+0 known, 0 up/,
    );
    expect(r.stdout).toContain(
      "Calc is now removed (load Calc brings it back)\nCalc is now loaded (enable Calc to serve calls)\nCalc is now enabled\n3\n",
    );
    expect(r.stdout).toMatch(/version\s+1\.2\.3\nstate\s+enabled/);
    expect(r.stdout).toContain("  add(a: number, b?: number = 1)  function");
    expect(r.stdout).toContain("No other nodes known.");
  });

  it("without the node's secret: UNAUTHORIZED, exit 1", async () => {
    const r = await aio(["console", "--node", node.url], { input: "list\n" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^UNAUTHORIZED: /m);
  });

  it.skipIf(!installed("tmux"))(
    "on a terminal: completes commands, plugin names and endpoint names; errors keep the session",
    async () => {
      const home = tempDir();
      const command = `env -u AIO_SECRET -u NO_COLOR AIO_HISTORY_FILE=${home}/history ${process.execPath} ${CLI} console --config ${join(dir, "config.yml")}; echo "EXITED $?"; sleep 60`;
      const term = new Terminal(command, dir);
      try {
        await term.waitFor(/aio \S+>\s*$/m);
        expect(term.screen()).toContain("Connected to config ");
        // A command: "lis" + Tab completes to "list ".
        term.type("lis");
        term.keys("Tab");
        await term.waitFor(/> list\s*$/m);
        term.keys("Enter");
        await term.waitFor(/Calc\s+1\.2\.3\s+enabled/);
        // A plugin name, then an endpoint name: "call Ca" Tab → "call Calc ", "ti" Tab → "ticks ".
        term.type("call Ca");
        term.keys("Tab");
        await term.waitFor(/> call Calc\s*$/m);
        term.type("ad");
        term.keys("Tab");
        await term.waitFor(/> call Calc add\s*$/m);
        term.type("[40, 2]");
        term.keys("Enter");
        await term.waitFor(/^42$/m);
        // Two candidates: a second Tab lists them.
        term.type("stream Calc ");
        term.keys("Tab");
        await new Promise((resolve) => setTimeout(resolve, 300));
        term.keys("Tab");
        await term.waitFor(/add\s+echo\s+slow\s+fail\s+count\s+ticks/);
        term.type("ticks");
        term.keys("Enter");
        await term.waitFor(/\{"tick":2\}/);
        // An error is shown, and the session goes on.
        term.type("enable Nobody");
        term.keys("Enter");
        await term.waitFor(/PLUGIN_NOT_FOUND: /);
        term.type("call Calc add [1, 1]");
        term.keys("Enter");
        await term.waitFor(/^2$/m);
        // History: Up brings back the last line.
        term.keys("Up");
        await term.waitFor(/> call Calc add \[1, 1\]$/m);
        term.keys("C-u");
        term.type("exit");
        term.keys("Enter");
        const screen = await term.waitFor("EXITED 0");
        // Colors on a terminal.
        expect(term.screen(true)).toContain("\u001b[32menabled");
        expect(screen).not.toContain("Error");
      } finally {
        term.close();
      }
    },
  );

  it.skipIf(!installed("script"))(
    "shows start-up progress on a terminal only; NO_COLOR turns colors off",
    async () => {
      const local = project();
      const args = ["plugins", "--config", join(local, "config.yml")];
      const [colored, plain, piped] = await Promise.all([
        inTerminal(args),
        inTerminal(args, { NO_COLOR: "1" }),
        aio(args),
      ]);
      expect(colored.code, colored.output).toBe(0);
      const progress = new RegExp(`\r${ESC}\\[KStarting "[^"]+": 0/1 plugins loaded, 0 enabled…`);
      expect(colored.output).toMatch(progress);
      expect(colored.output).toContain("\u001b[32menabled\u001b[0m");
      expect(plain.code, plain.output).toBe(0);
      expect(plain.output).toContain("Starting");
      expect(plain.output).toMatch(/Calc\s+1\.2\.3\s+enabled/);
      expect(plain.output).not.toContain("\u001b[32m");
      expect(piped.stdout).toMatch(/Calc\s+1\.2\.3\s+enabled/);
      expect(piped.stdout + piped.stderr).not.toContain("Starting");
      expect(piped.stdout + piped.stderr).not.toContain("\u001b");
    },
  );
});

/** Runs `aio <args>` on a pseudo-terminal (script), stdout and stderr mixed as a user sees them. */
function inTerminal(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qfec", command, "/dev/null"], {
      env: cliEnv({ ...env, TERM: "xterm" }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, output }));
  });
}
