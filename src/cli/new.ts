/**
 * `aio new <Name>`: a plugin folder that loads as it is: plugin.ts (a class with a function, an
 * async function and a generator endpoint), plugin_config.yml declaring them, and a test that
 * passes as generated.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CliError, UsageError } from "../errors.js";
import { EXIT, out, shownPath } from "./output.js";
import { TYPES_FILE } from "./types.js";

export interface NewOptions {
  dir?: string | undefined;
}

const RESERVED = new Set(
  (
    "break case catch class const continue debugger default delete do else enum export extends " +
    "false finally for function if import in instanceof new null return super switch this throw " +
    "true try typeof var void while with yield let static implements interface package private " +
    "protected public await arguments eval undefined NaN Infinity"
  ).split(" "),
);

/** Why `name` cannot name a plugin class, or undefined when it can. */
export function nameProblem(name: string): string | undefined {
  if (!/^[\p{ID_Start}_$][\p{ID_Continue}$\u200c\u200d]*$/u.test(name)) {
    return `"${name}" is not a JavaScript identifier: use letters, digits, _ and $, not starting with a digit (like Greeter or WeatherStation)`;
  }
  if (RESERVED.has(name)) return `"${name}" is a reserved word in JavaScript`;
  if (name === "Plugin") return `"Plugin" is the base class's name; choose another`;
  return undefined;
}

function pluginSource(name: string): string {
  return `import { Plugin } from "aio-assistant-core";

/**
 * ${name}. Each endpoint declared in plugin_config.yml is a method of this class; other plugins
 * and the application call it by its access_name.
 */
export class ${name} extends Plugin {
  #greeting = "Hello";

  /** Runs once when the plugin loads, with plugin_config.yml's \`arguments\`. */
  override onLoad(args: unknown): void {
    const greeting = (args as { greeting?: unknown } | null)?.greeting;
    if (typeof greeting === "string") this.#greeting = greeting;
    this.logger.debug({ args }, "loaded");
  }

  /** A plain function: \`execute\` (or \`executeSync\`) calls it. */
  greet(name: string): string {
    return \`\${this.#greeting}, \${name}!\`;
  }

  /** An async function: \`execute\` calls it and waits for the promise. */
  async add(a: number, b: number): Promise<number> {
    await new Promise((resolve) => setTimeout(resolve, 1));
    return a + b;
  }

  /** A generator: \`executeStream\` (or \`executeStreamSync\`) consumes it, one item per yield. */
  *count(to: number): Generator<number, void, undefined> {
    for (let i = 1; i <= to; i++) yield i;
  }
}
`;
}

function manifestSource(name: string): string {
  return `# The manifest of ${name}: what it is, and the endpoints others may call.
description: ${name} plugin
version: 0.1.0
remote: false                         # true: other nodes may call endpoints that say remote: true
arguments:                            # passed to onLoad
  greeting: Hello
endpoints:
  - internal_name: greet              # the method
    access_name: greet                # the name callers use
    tags: []
    remote: false
    accessible_by_other_plugins: true
    description: Greets someone by name
    arguments:
      - name: name
        type: str
        description: Who to greet
        required: true
  - internal_name: add
    access_name: add
    tags: []
    remote: false
    accessible_by_other_plugins: true
    description: Adds two numbers
    arguments:
      - name: a
        type: number
        description: The first number
        required: true
      - name: b
        type: number
        description: The second number
        default: 1
  - internal_name: count
    access_name: count
    tags: []
    remote: false
    accessible_by_other_plugins: true
    description: Counts from 1 to a number, one item at a time
    arguments:
      - name: to
        type: int
        description: Where to stop
        default: 3
`;
}

function testSource(name: string, runLine: string): string {
  return `/**
 * Tests of ${name}, through a PluginCore as the application calls it. Run:
 *   ${runLine}
 * (.mts: an ES module whatever package.json says, so the plugin and this test share one copy
 * of aio-assistant-core.)
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { PluginCore, RequestError } from "aio-assistant-core";

const core = new PluginCore({
  plugins: [{ name: "${name}", enabled: true, path: fileURLToPath(new URL(".", import.meta.url)) }],
  general: { console_log_level: "WARNING", log_dir: "" },
});

before(() => core.start());
after(() => core.close());

test("${name} loads and is enabled", () => {
  const info = core.getPluginInfo("${name}");
  assert.equal(info?.state, "enabled", info?.error);
});

test("greet: positional and named arguments", async () => {
  assert.equal(await core.execute("${name}", "greet", "Ada"), "Hello, Ada!");
  assert.equal(await core.execute("${name}", "greet", { name: "Bo" }), "Hello, Bo!");
});

test("add: an async endpoint, with a default argument", async () => {
  assert.equal(await core.execute("${name}", "add", [2, 3]), 5);
  assert.equal(await core.execute("${name}", "add", { a: 41 }), 42);
});

test("count: a generator, consumed as a stream", async () => {
  const items: number[] = [];
  for await (const item of core.executeStream<number>("${name}", "count", { to: 4 })) {
    items.push(item);
  }
  assert.deepEqual(items, [1, 2, 3, 4]);
});

test("arguments are checked against plugin_config.yml", async () => {
  await assert.rejects(
    core.execute("${name}", "greet", 42),
    (error: unknown) => error instanceof RequestError && error.code === "INVALID_ARGUMENTS",
  );
});
`;
}

/** Creates the folder and prints what to do next; returns the exit code. */
export function newCommand(name: string, options: NewOptions): number {
  const problem = nameProblem(name);
  if (problem) throw new UsageError(`invalid plugin name: ${problem}`);
  const parent = resolve(options.dir ?? "plugins");
  const folder = join(parent, name);
  if (existsSync(folder)) {
    throw new CliError("EXISTS", `${shownPath(folder)} already exists; nothing was written`);
  }
  const shown = shownPath(folder);
  const relativePath = shown === folder ? folder : `./${shown}`;
  const testFile = `${name}.test.mts`;
  const runLine = `node --import tsx --test ${relativePath}/${testFile}`;
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, "plugin.ts"), pluginSource(name));
  writeFileSync(join(folder, "plugin_config.yml"), manifestSource(name));
  writeFileSync(join(folder, testFile), testSource(name, runLine));
  out(`Created ${relativePath}/
  plugin.ts            the class ${name}: greet (function), add (async function), count (generator)
  plugin_config.yml    its manifest: the endpoints and their arguments
  ${testFile.padEnd(20)} its test; run it with:
                         ${runLine}

Add it to config.yml, under plugins:
  - name: ${name}
    enabled: true
    path: ${relativePath}

Then: aio check, and aio call ${name} greet '"Ada"'${
    existsSync(TYPES_FILE)
      ? `\nand, for typed calls to it, aio types -o ${TYPES_FILE} (aio check says when it is out of date)`
      : ""
  }`);
  return EXIT.OK;
}
