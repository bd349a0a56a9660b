/**
 * `aio types` and typed calls: small projects compiled with tsc against the declarations it
 * writes. Wrong argument types, a missing required argument, unknown plugins, endpoints and
 * named arguments fail to compile (each marked `@ts-expect-error`, which tsc reports when the
 * error does not happen); right calls compile, and results carry their types: from the plugin's
 * TypeScript, from the manifest's `returns:`, or `unknown`. Plugins' `this.execute` is checked
 * too. From a running node (`--node`), the declarations cover its endpoints and its peers'.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  aio,
  linkPackage,
  project,
  REPO_ROOT,
  removeTempDirs,
  startNode,
  stopNodes,
  writeTree,
} from "./helpers.js";

const TSC = join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");

const TSCONFIG = JSON.stringify({
  compilerOptions: {
    strict: true,
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    noEmit: true,
    skipLibCheck: true,
    types: ["node"],
  },
  include: ["*.ts", "plugins/**/*.ts"],
});

/** A JavaScript plugin, typed only by its manifest's `returns:`. */
const GREETER = {
  "plugins/Greeter/plugin.js": `import { Plugin } from "aio-assistant-core";
export class Greeter extends Plugin {
  greet(name) { return "hello " + name; }
  anything() { return 1; }
}
`,
  "plugins/Greeter/plugin_config.yml": `version: 1.0.0
remote: true
endpoints:
  - internal_name: greet
    remote: true
    returns: str
    arguments:
      - name: name
        type: str
        required: true
  - internal_name: anything
    remote: true
`,
};

/** A TypeScript plugin whose own calls are checked as the application's are. */
const CALLER = {
  "plugins/Caller/plugin.ts": `import { Plugin } from "aio-assistant-core";
export class Caller extends Plugin {
  async total(): Promise<number> {
    const sum: number = await this.execute("Calc", "add", { a: 1, b: 2 });
    // @ts-expect-error a string where the manifest declares a number
    await this.execute("Calc", "add", { a: "one" });
    return sum;
  }
}
`,
  "plugins/Caller/plugin_config.yml": "version: 1.0.0\nendpoints:\n  - internal_name: total\n",
};

const MAIN = `import { PluginCore } from "aio-assistant-core";

const core = new PluginCore("config.yml");
await core.start();

// Right calls compile; results carry the types the plugins give them.
const named: number = await core.execute("Calc", "add", { a: 1, b: 2 });
const positional: number = await core.execute("Calc", "add", [1]);
const alone: number = await core.execute("Calc", "add", 5);
for await (const n of core.executeStream("Calc", "count", 3)) {
  const item: number = n;
  void item;
}
const greeting: string = await core.execute("Greeter", "greet", "Ann");
const unknownResult = await core.execute("Greeter", "anything");
// @ts-expect-error a result without a declared type is unknown
const notANumber: number = unknownResult;
const told: number = await core.execute<number>("Calc", "echo", 1);
void [named, positional, alone, greeting, notANumber, told];

// @ts-expect-error a string where the manifest declares a number
await core.execute("Calc", "add", { a: "x" });
// @ts-expect-error a missing required argument
await core.execute("Calc", "add");
// @ts-expect-error an unknown plugin
await core.execute("Nope", "add", 1);
// @ts-expect-error an unknown endpoint
await core.execute("Calc", "nope", 1);
// @ts-expect-error an unknown named argument
await core.execute("Calc", "add", { a: 1, c: 2 });
// @ts-expect-error the result is a number, not a string
const wrong: string = await core.execute("Calc", "add", 1);
void wrong;
`;

function tsc(dir: string): string {
  try {
    execFileSync(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: dir, encoding: "utf8" });
    return "";
  } catch (error) {
    return String((error as { stdout?: string }).stdout ?? error);
  }
}

afterAll(async () => {
  await stopNodes();
  removeTempDirs();
});

describe("aio types", () => {
  it("from a config: wrong calls fail to compile, right ones compile with typed results", async () => {
    const dir = project(
      { ...GREETER, ...CALLER, "main.ts": MAIN, "tsconfig.json": TSCONFIG },
      { plugins: ["Calc", "Greeter", "Caller"] },
    );
    linkPackage(dir);
    const r = await aio(["types", "config.yml", "-o", "aio-types.d.ts"], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("Wrote the types of 3 plugin(s) to aio-types.d.ts");
    expect(readFileSync(join(dir, "aio-types.d.ts"), "utf8")).toContain('"add": {');
    expect(tsc(dir)).toBe("");
  }, 60_000);

  it("without the declarations the same calls are unchecked (every @ts-expect-error is unused)", () => {
    const dir = project(
      { ...GREETER, ...CALLER, "main.ts": MAIN, "tsconfig.json": TSCONFIG },
      { plugins: ["Calc", "Greeter", "Caller"] },
    );
    linkPackage(dir);
    expect(existsSync(join(dir, "aio-types.d.ts"))).toBe(false);
    const errors = tsc(dir);
    expect(errors).toMatch(/Unused '@ts-expect-error' directive/);
  }, 60_000);

  it("aio check says when aio-types.d.ts no longer matches the manifests", async () => {
    const dir = project();
    expect((await aio(["types", "-o", "aio-types.d.ts"], { cwd: dir })).code).toBe(0);
    const fresh = await aio(["check"], { cwd: dir });
    expect(fresh.code, fresh.stdout).toBe(0);
    expect(fresh.stdout).not.toContain("out of date");
    const manifest = join(dir, "plugins", "Calc", "plugin_config.yml");
    writeTree(dir, {
      "plugins/Calc/plugin_config.yml": readFileSync(manifest, "utf8").replace(
        "type: number\n        required: true",
        "type: str\n        required: true",
      ),
    });
    const stale = await aio(["check"], { cwd: dir });
    expect(stale.code).toBe(0);
    expect(stale.stdout).toMatch(
      /warning: aio-types\.d\.ts: out of date with the manifests; run `aio types -o aio-types\.d\.ts`/,
    );
  });

  it("--node: the endpoints of a running node, printed", async () => {
    const dir = project({}, { networking: "  enabled: true\n  port: 0\n  bind: 127.0.0.1\n" });
    const node = await startNode(dir, ["config.yml"]);
    const r = await aio(["types", "--node", node.url]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('declare module "aio-assistant-core"');
    expect(r.stdout).toMatch(
      /"Calc": \{[\s\S]*"add": \{\s+args: \{ "a": number; "b"\?: number \} \| \[a: number, b\?: number\] \| number;/,
    );
    // Without the plugin's source, results are unknown.
    expect(r.stdout).toContain("result: unknown;");
    writeTree(dir, { "aio-types.d.ts": r.stdout });
  });
});
