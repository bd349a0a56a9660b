/**
 * `aio call` and `aio stream` with a core started in the process (`--config`, or the default
 * ./config.yml): results on stdout as JSON, errors as `CODE: message` on stderr with exit 1,
 * usage errors with exit 2.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aio, project, removeTempDirs } from "./helpers.js";

let dir: string;

beforeAll(() => {
  dir = project();
});
afterAll(() => removeTempDirs());

describe.concurrent("aio call and aio stream, in-process", () => {
  it("uses ./config.yml by default; stdout has the result and nothing else", async () => {
    const r = await aio(["call", "Calc", "add", '{"a": 41}'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("42\n");
    // The plugin's console.log at load went to stderr, not into the result; no log at WARNING.
    expect(r.stderr).toContain("Calc says hello on stdout");
    expect(r.stderr).not.toContain("INFO");
    expect(r.stderr).not.toContain("bundled example");
  });

  it("--config; objects are printed as indented JSON", async () => {
    const value = { list: [1, "two", null], nested: { ok: true } };
    const r = await aio(
      ["call", "Calc", "echo", JSON.stringify([value]), "--config", "config.yml"],
      {
        cwd: dir,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${JSON.stringify(value, null, 2)}\n`);
  });

  it("exits 2 with a usage error for args that are not JSON, before starting anything", async () => {
    const r = await aio(["call", "Calc", "add", "{a: 1}"], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error: args-json is not valid JSON/);
    expect(r.stderr).toContain("(add --help for usage)");
    expect(r.stderr).not.toContain("Calc says hello");
  });

  it("exits 1 with CODE: message for the call's errors", async () => {
    const [missing, threw, wrongKind] = await Promise.all([
      aio(["call", "Nope", "add", "1"], { cwd: dir }),
      aio(["call", "Calc", "fail", '"out of range"'], { cwd: dir }),
      aio(["call", "Calc", "count", "2"], { cwd: dir }),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toMatch(/^PLUGIN_NOT_FOUND: .*"Nope"/m);
    expect(threw.code).toBe(1);
    expect(threw.stderr).toMatch(/^PLUGIN_ERROR: .*out of range/m);
    expect(wrongKind.code).toBe(1);
    expect(wrongKind.stderr).toMatch(/^WRONG_KIND: .*on the command line: aio stream/m);
  });

  it("--timeout fails a slow call with TIMEOUT, without waiting for it", async () => {
    const started = Date.now();
    const r = await aio(["call", "Calc", "slow", "60000", "--timeout", "300"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^TIMEOUT: /m);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it("checks option values: --timeout, --log-level, --config with --node", async () => {
    const [timeout, level, both, missing] = await Promise.all([
      aio(["call", "Calc", "add", "1", "--timeout", "soon"], { cwd: dir }),
      aio(["call", "Calc", "add", "1", "--log-level", "loud"], { cwd: dir }),
      aio(["call", "Calc", "add", "1", "--config", "config.yml", "--node", "http://127.0.0.1:1"], {
        cwd: dir,
      }),
      aio(["call", "Calc"], { cwd: dir }),
    ]);
    for (const r of [timeout, level, both, missing]) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe("");
    }
    expect(timeout.stderr).toContain("--timeout");
    expect(level.stderr).toContain("DEBUG, INFO, WARNING, ERROR, CRITICAL");
    expect(both.stderr).toContain("cannot be used with");
    expect(missing.stderr).toContain("missing required argument 'method'");
  });

  it("help and version exit 0; no command or an unknown one exits 2", async () => {
    const [help, version, none, unknown] = await Promise.all([
      aio(["--help"]),
      aio(["--version"]),
      aio([]),
      aio(["frobnicate"]),
    ]);
    expect(help.code).toBe(0);
    for (const command of [
      "run",
      "call",
      "stream",
      "plugins",
      "nodes",
      "endpoints",
      "new",
      "check",
      "console",
    ]) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command} `, "m"));
    }
    expect(help.stdout).toContain("Exit codes:");
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("Usage: aio");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
  });

  it("aio endpoints and aio nodes, in-process", async () => {
    const [endpoints, nodes] = await Promise.all([
      aio(["endpoints", "Calc"], { cwd: dir }),
      aio(["nodes", "--json"], { cwd: dir }),
    ]);
    expect(endpoints.code, endpoints.stderr).toBe(0);
    expect(endpoints.stdout).toMatch(
      /^ENDPOINT\s+KIND\s+ARGUMENTS\s+REMOTE\s+OTHER PLUGINS\s+DESCRIPTION\nadd\s+function\s+a: number, b\?: number = 1/,
    );
    expect(nodes.code, nodes.stderr).toBe(0);
    expect(JSON.parse(nodes.stdout)).toEqual({ hostname: expect.any(String), nodes: [] });
  });

  it("--log-level (any case) overrides the config's console level", async () => {
    const r = await aio(["call", "Calc", "add", "[1, 1]", "--log-level", "info"], { cwd: dir });
    expect(r.stdout).toBe("2\n");
    expect(r.stderr).toMatch(/INFO: \[core\] Ready in/);
  });

  it("prints one JSON line per item; no args-json means no arguments (the defaults)", async () => {
    const r = await aio(["stream", "Calc", "ticks"], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('{"tick":0}\n{"tick":1}\n{"tick":2}\n');
  });

  it("a function endpoint is WRONG_KIND, pointing to aio call", async () => {
    const r = await aio(["stream", "Calc", "add", "[1, 2]"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^WRONG_KIND: .*on the command line: aio call/m);
  });
});
