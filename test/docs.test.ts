/**
 * The documentation's examples, run against the built package, so the docs stay true when the
 * code changes.
 *
 * Code blocks are read from the Markdown files themselves: a file's block is found by its first
 * line (`// plugins/Greeter/plugin.ts`, `# config.yml`), a snippet by what it contains. Files
 * are written into a temporary folder as the docs lay them out, and:
 *
 * - the `main.ts` snippets run as a reader would run them (`npx tsx main.ts`, in a child
 *   process, with `node_modules/aio-assistant-core` linked to this repository), and their
 *   output is compared with what the docs' comments promise;
 * - the snippets that use a `core` run in-process (compiled with `typescript`, their imports
 *   from "aio-assistant-core" bound to the package), against a core built from the docs' files;
 * - every TypeScript block type-checks against the package's published types;
 * - the reference pages are checked against the code: the defaults in configuration.md's
 *   tables, its error and warning examples, and api.md's exports and error codes.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import * as aio from "aio-assistant-core";
import {
  ConfigError,
  type ConfigObject,
  type ExecuteOptions,
  PluginCore,
  RequestError,
} from "aio-assistant-core";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { REQUEST_ERROR_STATUS } from "../src/errors.js";
import {
  cleanup,
  collect,
  EXAMPLES,
  REPO_ROOT,
  rejection,
  tempDir,
  writeTree,
} from "./core/helpers.js";

// ------------------------------------------------------------------------------ Markdown

interface Block {
  lang: string;
  code: string;
  /** The first line of the code. */
  first: string;
  /** The enclosing `##` heading. */
  section: string;
  /** Index among the file's blocks. */
  index: number;
}

const markdownCache = new Map<string, Block[]>();

/** The fenced code blocks of a Markdown file of the repository. */
function blocksOf(file: string): Block[] {
  const cached = markdownCache.get(file);
  if (cached) return cached;
  const text = readFileSync(join(REPO_ROOT, file), "utf8");
  const blocks: Block[] = [];
  let section = "";
  let fence: { marker: string; lang: string; lines: string[] } | undefined;
  for (const line of text.split("\n")) {
    if (fence) {
      if (line.trimEnd() === fence.marker) {
        const code = `${fence.lines.join("\n")}\n`;
        const first = fence.lines[0] ?? "";
        blocks.push({ lang: fence.lang, code, first, section, index: blocks.length });
        fence = undefined;
      } else {
        fence.lines.push(line);
      }
      continue;
    }
    const open = /^(`{3,})(\S*)\s*$/.exec(line);
    if (open) {
      fence = { marker: open[1] as string, lang: open[2] as string, lines: [] };
      continue;
    }
    const heading = /^##\s+(.*)$/.exec(line);
    if (heading) section = (heading[1] as string).trim();
  }
  markdownCache.set(file, blocks);
  return blocks;
}

/** The one block of `file` whose first line is the comment `// name` or `# name`. */
function fileBlock(file: string, name: string, section?: string): Block {
  const found = blocksOf(file).filter(
    (b) =>
      (b.first === `// ${name}` || b.first === `# ${name}`) &&
      (section === undefined || b.section === section),
  );
  expect(found, `${file}: one code block starting with "// ${name}" or "# ${name}"`).toHaveLength(
    1,
  );
  return found[0] as Block;
}

/** The one TypeScript block of `file` containing `text` (in `section`, when given). */
function snippet(file: string, text: string, section?: string): Block {
  const found = blocksOf(file).filter(
    (b) =>
      b.lang === "ts" && b.code.includes(text) && (section === undefined || b.section === section),
  );
  expect(found, `${file}: one ts block containing ${JSON.stringify(text)}`).toHaveLength(1);
  return found[0] as Block;
}

/** The block right after `block` in its file. */
function nextBlock(file: string, block: Block): Block {
  const next = blocksOf(file)[block.index + 1];
  expect(next, `${file}: a block after "${block.first}"`).toBeDefined();
  return next as Block;
}

/** The comment at the end of the line of `code` that contains `text`. */
function commentAfter(code: string, text: string): string {
  const line = code.split("\n").find((l) => l.includes(text));
  expect(line, `a line containing ${JSON.stringify(text)}`).toBeDefined();
  const comment = /\/\/\s*(.*)$/.exec(line as string);
  expect(comment, `a comment on the line ${JSON.stringify(line)}`).not.toBeNull();
  return (comment as RegExpExecArray)[1]?.trim() ?? "";
}

interface Row {
  key: string;
  cells: string[];
}

/** The rows of the first table after the heading line `heading` in `file`. */
function tableAfter(file: string, heading: string): Row[] {
  const lines = readFileSync(join(REPO_ROOT, file), "utf8").split("\n");
  const start = lines.indexOf(heading);
  expect(start, `${file}: a heading ${JSON.stringify(heading)}`).toBeGreaterThanOrEqual(0);
  const rows: Row[] = [];
  let inTable = false;
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith("|")) {
      inTable = true;
      const cells = line
        .slice(1, line.endsWith("|") ? -1 : undefined)
        .split(/(?<!\\)\|/)
        .map((c) => c.trim());
      const key = /^`([^`]+)`$/.exec(cells[0] ?? "");
      if (key) rows.push({ key: key[1] as string, cells });
    } else if (inTable) {
      break;
    }
  }
  expect(rows.length, `${file}: a table after ${JSON.stringify(heading)}`).toBeGreaterThan(0);
  return rows;
}

// ------------------------------------------------------------------------------ running

const requireHere = createRequire(import.meta.url);
const TSX_CLI = join(dirname(requireHere.resolve("tsx/package.json")), "dist", "cli.mjs");

/**
 * Makes `dir` a project with `aio-assistant-core` installed. Its package.json says
 * `"type": "module"`: the snippets use top-level await, which tsx refuses in a CommonJS
 * project (`npm init`'s default).
 */
function linkPackage(dir: string): void {
  writeTree(dir, {
    "package.json": `${JSON.stringify({ type: "module", dependencies: { "aio-assistant-core": "*" } })}\n`,
  });
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  symlinkSync(REPO_ROOT, join(dir, "node_modules", "aio-assistant-core"), "dir");
}

/** `npx tsx <file>` in `dir`. */
function runTsx(
  dir: string,
  file: string,
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [TSX_CLI, file], {
    cwd: dir,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, NO_COLOR: "1", AIO_SECRET: "" },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

type AsyncFn = (...args: unknown[]) => Promise<unknown>;
const AsyncFunction = Object.getPrototypeOf(async () => undefined).constructor as new (
  ...args: string[]
) => AsyncFn;

const IMPORT_LINE = /^import\s+(type\s+)?\{([^}]*)\}\s+from\s+"aio-assistant-core";?[ \t]*$/gm;

/**
 * Runs a snippet in-process as the body of an async function: its imports from
 * "aio-assistant-core" are bound to the package, `scope` provides the rest (`core`, a
 * `console` that records). `tail` is appended, e.g. `return square;`.
 */
async function runSnippet(
  code: string,
  scope: Record<string, unknown>,
  tail = "",
): Promise<unknown> {
  const imported: string[] = [];
  const body = code.replace(IMPORT_LINE, (_all, typeOnly: string | undefined, names: string) => {
    if (typeOnly) return "";
    for (const part of names.split(",")) {
      const name = part.trim();
      if (name !== "" && !name.startsWith("type ")) imported.push(name);
    }
    return "";
  });
  expect(body, "only named imports from aio-assistant-core").not.toMatch(/^\s*import\s/m);
  const js = ts
    .transpileModule(`${body}\n${tail}`, {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
    })
    .outputText.replace(/^export \{\};?\s*$/m, "");
  const pkg = aio as unknown as Record<string, unknown>;
  const names = [...new Set([...Object.keys(scope), ...imported])];
  for (const name of imported)
    expect(pkg[name], `aio-assistant-core exports ${name}`).toBeDefined();
  const values = names.map((name) => (name in scope ? scope[name] : pkg[name]));
  return new AsyncFunction(...names, js)(...values);
}

/** A `console` whose calls are recorded. */
function recordingConsole() {
  const log: unknown[][] = [];
  const error: unknown[][] = [];
  return {
    log,
    error,
    console: {
      log: (...args: unknown[]) => log.push(args),
      info: (...args: unknown[]) => log.push(args),
      error: (...args: unknown[]) => error.push(args),
      warn: (...args: unknown[]) => error.push(args),
    },
  };
}

const cores: PluginCore[] = [];

/** A core closed after the tests. */
function track(core: PluginCore): PluginCore {
  cores.push(core);
  return core;
}

/**
 * A `PluginCore` class for snippets that write `new PluginCore("config.yml")`: the path
 * resolves against `dir` (not the test's working directory), or `config` is used instead;
 * `execute` results are recorded in `results`.
 */
function docCore(
  dir: string,
  options: { config?: ConfigObject; results?: unknown[] } = {},
): typeof PluginCore {
  const results = options.results ?? [];
  return class DocCore extends PluginCore {
    constructor(config: string | ConfigObject) {
      super(options.config ?? (typeof config === "string" ? resolve(dir, config) : config));
      track(this);
    }

    override async execute<T = unknown>(
      plugin: string,
      method: string,
      args?: unknown,
      opts?: ExecuteOptions,
    ): Promise<T> {
      const result = await super.execute<T>(plugin, method, args, opts);
      results.push(result);
      return result;
    }
  };
}

/** A config.yml block as an object: quiet, no log file, paths from `dir`. */
function quietConfig(yamlText: string, dir: string): ConfigObject {
  const data = parse(yamlText) as ConfigObject;
  return {
    ...data,
    general: { ...data.general, console_log_level: "CRITICAL", log_dir: "" },
    baseDir: dir,
  };
}

/** The JSON lines of a log file at WARNING level or above. */
function warningsIn(file: string | undefined): string[] {
  expect(file, "a log file").toBeDefined();
  return readFileSync(file as string, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as { level: number; msg: string })
    .filter((entry) => entry.level >= 40)
    .map((entry) => entry.msg);
}

/** Adds `import { Plugin }` to a plugin class block that uses it without importing it. */
function completePlugin(code: string): string {
  return /import\s*\{[^}]*\bPlugin\b[^}]*\}\s*from/.test(code)
    ? code
    : `import { Plugin } from "aio-assistant-core";\n\n${code}`;
}

afterAll(async () => {
  await Promise.all(cores.splice(0).map((core) => core.close().catch(() => undefined)));
  await cleanup();
});

// ------------------------------------------------------------------------------ "not yet"

/**
 * Phrases that say a feature does not work yet. Docs written before a feature was built keep
 * saying so after it is; this catches them.
 */
const NOT_YET =
  /not implemented|not yet (?:implemented|supported|available|raised|built)|not (?:supported|available|raised|built) yet|\bfor now\b|\bplanned\b|\bin a later (?:issue|version|release)\b|\bcoming soon\b|\bTODO\b|\bFIXME\b/i;

describe("no page says that something which works is not built yet", () => {
  const pages = [
    "README.md",
    ...readdirSync(join(REPO_ROOT, "docs"))
      .filter((name) => name.endsWith(".md"))
      .map((name) => `docs/${name}`),
  ];

  it("no 'not yet' phrase appears", () => {
    const stale: string[] = [];
    for (const page of pages) {
      readFileSync(join(REPO_ROOT, page), "utf8")
        .split("\n")
        .forEach((line, i) => {
          if (NOT_YET.test(line)) {
            stale.push(`${page}:${i + 1}: ${line.trim()}`);
          }
        });
    }
    expect(stale, "check each against src/ and say what it does now").toEqual([]);
  });
});

// ------------------------------------------------------------------------------ README.md

describe("README.md", () => {
  const README = "README.md";
  const SECTION = "A plugin";

  function greeterFiles(): Record<string, string> {
    return {
      "plugins/Greeter/plugin.ts": fileBlock(README, "plugins/Greeter/plugin.ts", SECTION).code,
      "plugins/Greeter/plugin_config.yml": fileBlock(
        README,
        "plugins/Greeter/plugin_config.yml",
        SECTION,
      ).code,
      "config.yml": fileBlock(README, "config.yml", SECTION).code,
    };
  }

  it("the first example: calculate_square(6) is 36", async () => {
    const block = snippet(README, '"calculate_square", 6');
    const data = parse(readFileSync(join(EXAMPLES, "config.yml"), "utf8")) as ConfigObject;
    const core = track(
      new PluginCore({
        ...data,
        plugins: (data.plugins ?? []).filter((p) => p.name === "PluginB"),
        general: { ...data.general, console_log_level: "CRITICAL", log_dir: "" },
        baseDir: EXAMPLES,
      }),
    );
    await core.start();
    const square = await runSnippet(block.code, { core }, "return square;");
    expect(String(square)).toBe(commentAfter(block.code, "calculate_square"));
    await core.close();
  });

  it('"A plugin": the usage snippet prints what its comments say, run with tsx', () => {
    const usage = snippet(README, "new PluginCore(", SECTION).code;
    expect(commentAfter(usage, '"Ada"')).toBe("Hello, Ada!");
    expect(commentAfter(usage, "executeStream")).toBe("1, 2");

    const dir = tempDir("aio-docs-readme-");
    writeTree(dir, { ...greeterFiles(), "main.ts": usage });
    linkPackage(dir);
    const run = runTsx(dir, "main.ts");
    expect(run.stderr).not.toMatch(/\b(WARN|ERROR|FATAL)\b/);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe("Hello, Ada!\nHello, Bo!\n1\n2\n");
  });

  it('"A plugin": Greeter is what its manifest declares', async () => {
    const dir = tempDir("aio-docs-greeter-");
    const files = greeterFiles();
    writeTree(dir, files);
    const core = track(new PluginCore(quietConfig(files["config.yml"] as string, dir)));
    await core.start();
    expect(core.getPluginInfo("Greeter")).toMatchObject({
      state: "enabled",
      version: "1.0.0",
      description: "Says hello",
    });
    expect(core.getPluginEndpoints("Greeter")?.map((e) => [e.access_name, e.kind])).toEqual([
      ["greet", "function"],
      ["count", "async generator"],
    ]);
    await expect(core.execute("Greeter", "greet", ["Ada"])).resolves.toBe("Hello, Ada!");
    expect((await rejection(core.execute("Greeter", "greet"))).code).toBe("INVALID_ARGUMENTS");
    expect(await collect(core.executeStream("Greeter", "count"))).toEqual([1, 2, 3]);
    await core.close();
  });
});

// ------------------------------------------------------------------------------ docs/plugins.md

describe("docs/plugins.md", () => {
  const PLUGINS = "docs/plugins.md";
  let weather: Record<string, string>;
  let dir: string;
  let core: PluginCore;

  /** Reporter and Safe as the page shows them, with the manifests the page leaves out. */
  function extraPlugins(): Record<string, string> {
    return {
      "plugins/Reporter/plugin.ts": completePlugin(snippet(PLUGINS, "export class Reporter").code),
      "plugins/Reporter/plugin_config.yml": [
        "endpoints:",
        "  - internal_name: report",
        "    arguments:",
        "      - name: city",
        "        type: str",
        "        required: true",
        "",
      ].join("\n"),
      "plugins/Safe/plugin.ts": completePlugin(snippet(PLUGINS, "export class Safe").code),
      "plugins/Safe/plugin_config.yml": [
        "endpoints:",
        "  - internal_name: ratio",
        "    arguments:",
        "      - { name: a, type: number }",
        "      - { name: b, type: number }",
        "  - internal_name: lines",
        "    arguments:",
        "      - { name: text, type: any }",
        "",
      ].join("\n"),
    };
  }

  beforeAll(async () => {
    weather = {
      "plugins/Weather/plugin.ts": fileBlock(PLUGINS, "plugins/Weather/plugin.ts").code,
      "plugins/Weather/plugin_config.yml": fileBlock(PLUGINS, "plugins/Weather/plugin_config.yml")
        .code,
      "config.yml": fileBlock(PLUGINS, "config.yml").code,
    };
    dir = tempDir("aio-docs-plugins-");
    writeTree(dir, { ...weather, ...extraPlugins() });
    const config = quietConfig(weather["config.yml"] as string, dir);
    config.plugins = [...(config.plugins ?? []), { name: "Reporter" }, { name: "Safe" }];
    core = track(new PluginCore(config));
    await core.start();
    expect(core.listPlugins().map((p) => [p.name, p.state, p.error])).toEqual([
      ["Weather", "enabled", undefined],
      ["Reporter", "enabled", undefined],
      ["Safe", "enabled", undefined],
    ]);
  });

  it("main.ts runs as written with tsx and prints two ticks", () => {
    const runDir = tempDir("aio-docs-weather-");
    writeTree(runDir, { ...weather, "main.ts": fileBlock(PLUGINS, "main.ts").code });
    linkPackage(runDir);
    const run = runTsx(runDir, "main.ts");
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toBe(""); // console_log_level: WARNING, and nothing to warn about
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\{ tick: 0, at: \d+ \}$/);
    expect(lines[1]).toMatch(/^\{ tick: 1, at: \d+ \}$/);
  });

  it("main.ts returns what its comments say", async () => {
    const main = fileBlock(PLUGINS, "main.ts").code;
    const results: unknown[] = [];
    const out = recordingConsole();
    await runSnippet(main, { PluginCore: docCore(dir, { results }), console: out.console });
    expect(commentAfter(main, '"convert", 100')).toMatch(/^212\b/);
    expect(commentAfter(main, '{ city: "Oslo" }')).toContain("days defaults to 2");
    const [converted, positional, named] = results as [number, string[], string[]];
    expect(converted).toBe(212);
    expect(positional).toHaveLength(3);
    expect(positional[0]).toBe("Oslo day 1: 68°F");
    expect(named).toHaveLength(2);
    expect(out.log.map(([tick]) => tick)).toEqual([
      { tick: 0, at: expect.any(Number) },
      { tick: 1, at: expect.any(Number) },
    ]);
  });

  it("the manifest, and config.yml's arguments replacing the manifest's", async () => {
    expect(core.getPluginInfo("Weather")).toMatchObject({
      version: "1.2.0",
      description: "Forecasts and unit conversion",
      remote: false,
    });
    expect(core.getPluginEndpoints("Weather")?.map((e) => [e.access_name, e.kind])).toEqual([
      ["convert", "function"],
      ["forecast", "async function"],
      ["ticks", "async generator"],
    ]);
    // Without config.yml's `arguments: { unit: F }`, the manifest's `unit: C` applies.
    const celsius = track(
      new PluginCore({
        plugins: [{ name: "Weather" }],
        general: { plugin_package: "plugins", console_log_level: "CRITICAL", log_dir: "" },
        baseDir: dir,
      }),
    );
    await celsius.start();
    await expect(celsius.execute("Weather", "convert", 100)).resolves.toBe(100);
    await celsius.close();
  });

  it("Which method to call: the wrong one fails with WRONG_KIND naming the right one", async () => {
    const stream = await rejection(core.execute("Weather", "ticks"));
    expect(stream.code).toBe("WRONG_KIND");
    expect(stream.message).toContain("executeStream()");
    const plain = await rejection(collect(core.executeStream("Weather", "convert", 1)));
    expect(plain.code).toBe("WRONG_KIND");
    expect(plain.message).toContain("execute()");
    expect(core.executeSync("Weather", "convert", 0)).toBe(32);
    const sync = await rejection(() => core.executeSync("Weather", "forecast", ["Oslo"]));
    expect(sync.code).toBe("WOULD_DEADLOCK");
    expect(sync.message).toContain("await execute()");
  });

  it("From inside a plugin: Reporter calls Weather, within the access rules", async () => {
    await expect(core.execute("Reporter", "report", "Oslo")).resolves.toBe(
      "Report: Oslo day 1: 68°F",
    );
    // ticks is not accessible_by_other_plugins: Reporter may not call it, the application may.
    const denied = await rejection(
      collect(core.executeStream("Weather", "ticks", 1, { author: "Reporter" })),
    );
    expect(denied.code).toBe("ACCESS_DENIED");
    await expect(collect(core.executeStream("Weather", "ticks", 1))).resolves.toHaveLength(1);
  });

  it("Options: the snippet runs", async () => {
    const options = snippet(PLUGINS, "timeout: 2_000").code;
    await expect(runSnippet(options, { core })).resolves.toBeUndefined();
    const aborted = new AbortController();
    aborted.abort();
    const error = await rejection(
      core.execute("Weather", "forecast", ["Oslo"], { signal: aborted.signal }),
    );
    expect(error.code).toBe("ABORTED");
  });

  it("Errors: the snippet prints the message its comment shows", async () => {
    for (const file of [PLUGINS, "docs/api.md"]) {
      const code = snippet(file, 'error.code === "INVALID_ARGUMENTS"').code;
      const out = recordingConsole();
      await runSnippet(code, { core, console: out.console });
      expect(out.error, file).toEqual([[commentAfter(code, "console.error(error.message)")]]);
    }
  });

  it("Decorators: Safe's ratio returns 0 on error, lines logs and rethrows", async () => {
    expect(core.getPluginEndpoints("Safe")?.map((e) => e.kind)).toEqual([
      "async function",
      "generator",
    ]);
    await expect(core.execute("Safe", "ratio", [1, 0])).resolves.toBe(0);
    await expect(core.execute("Safe", "ratio", [1, 4])).resolves.toBe(0.25);
    expect([...core.executeStreamSync("Safe", "lines", "a\nb")]).toEqual(["a", "b"]);
    const thrown = await rejection(() => [...core.executeStreamSync("Safe", "lines", 5)]);
    expect(thrown.code).toBe("PLUGIN_ERROR");
    expect(thrown.errorName).toBe("TypeError");
  });

  it("Lifecycle from the application: the snippet runs, and each comment holds", async () => {
    const own = track(new PluginCore(quietConfig(weather["config.yml"] as string, dir)));
    await own.start();
    const out = recordingConsole();
    const code = snippet(PLUGINS, 'core.disablePlugin("Weather")').code;
    await runSnippet(code, { core: own, console: out.console });
    // "load it again (then enablePlugin)"
    expect(own.getPluginInfo("Weather")?.state).toBe("loaded");
    await own.enablePlugin("Weather");
    await expect(own.execute("Weather", "convert", 100)).resolves.toBe(212);

    // "new calls: PLUGIN_DISABLED"
    await own.disablePlugin("Weather");
    expect((await rejection(own.execute("Weather", "convert", 1))).code).toBe("PLUGIN_DISABLED");
    await own.enablePlugin("Weather");
    // "fresh code": a new instance
    const before = own.getPluginInfo("Weather")?.uuid;
    await own.reloadPlugin("Weather");
    expect(own.getPluginInfo("Weather")).toMatchObject({ state: "enabled" });
    expect(own.getPluginInfo("Weather")?.uuid).not.toBe(before);
    // "removed (not listed any more)"
    await own.popPlugin("Weather");
    expect(own.getPluginInfo("Weather")).toBeUndefined();
    expect(own.listPlugins().map((p) => p.name)).not.toContain("Weather");
    await own.close();
  });
});

// ------------------------------------------------------------------------------ configuration.md

describe("docs/configuration.md", () => {
  const CONFIGURATION = "docs/configuration.md";

  /** What a table's default cell says the value is, as the loaded config shows it. */
  function documentedDefault(cell: string): { value: unknown } | undefined {
    const literal = /^`([^`]*)`$/.exec(cell);
    if (!literal) return cell === "" ? { value: undefined } : undefined;
    try {
      return { value: parse(literal[1] as string) ?? "" };
    } catch {
      return undefined;
    }
  }

  it("the defaults in the config.yml tables are the config's defaults", () => {
    const dir = tempDir("aio-docs-defaults-");
    const saved = process.env.AIO_SECRET;
    delete process.env.AIO_SECRET;
    let core: PluginCore;
    try {
      core = track(new PluginCore({ plugins: [{ name: "X" }], baseDir: dir }));
    } finally {
      if (saved !== undefined) process.env.AIO_SECRET = saved;
    }
    const config = core.config;
    const effective = (section: string, key: string, value: unknown): unknown => {
      if (section === "general" && key === "hostname" && value === "") return hostname();
      if (section === "general" && (key === "plugin_package" || key === "log_dir")) {
        return resolve(dir, value as string);
      }
      return value;
    };
    const sections = {
      general: config.general as unknown as Record<string, unknown>,
      networking: config.networking as unknown as Record<string, unknown>,
    };
    for (const [section, actual] of Object.entries(sections)) {
      const rows = tableAfter(CONFIGURATION, `### \`${section}\``);
      // Every key of the section is documented, and nothing else.
      expect(rows.map((r) => r.key).sort(), section).toEqual(Object.keys(actual).sort());
      for (const row of rows) {
        expect(["seed", "added"], `${section}.${row.key} origin`).toContain(row.cells[3]);
        const documented = documentedDefault(row.cells[2] ?? "");
        expect(documented, `${section}.${row.key}: a default`).toBeDefined();
        expect(actual[row.key], `${section}.${row.key}`).toEqual(
          effective(section, row.key, documented?.value),
        );
      }
    }

    // networking.nats, in its own table.
    const nats = config.networking.nats as unknown as Record<string, unknown>;
    const natsRows = tableAfter(CONFIGURATION, "#### `nats`");
    expect(natsRows.map((r) => r.key).sort(), "networking.nats").toEqual(Object.keys(nats).sort());
    for (const row of natsRows) {
      expect(["seed", "added"], `networking.nats.${row.key} origin`).toContain(row.cells[3]);
      const documented = documentedDefault(row.cells[2] ?? "");
      expect(documented, `networking.nats.${row.key}: a default`).toBeDefined();
      expect(nats[row.key], `networking.nats.${row.key}`).toEqual(documented?.value);
    }

    const entry = config.plugins[0] as unknown as Record<string, unknown>;
    for (const row of tableAfter(CONFIGURATION, "### `plugins`")) {
      expect(["seed", "added"], `plugins.${row.key} origin`).toContain(row.cells[3]);
      if (row.key === "name") continue;
      if (row.key === "path") {
        expect(row.cells[2]).toBe("`{plugin_package}/{name}`");
        expect(entry.path).toBe(join(config.general.plugin_package, "X"));
        continue;
      }
      const documented = documentedDefault(row.cells[2] ?? "");
      expect(documented, `plugins.${row.key}: a default`).toBeDefined();
      // isolation is left unset in the entry and reported as "none".
      const value = row.key === "isolation" ? (entry.isolation ?? "none") : entry[row.key];
      expect(value, `plugins.${row.key}`).toEqual(documented?.value);
    }
  });

  it("the defaults in the plugin_config.yml tables are the manifest's defaults", async () => {
    const dir = tempDir("aio-docs-manifest-");
    writeTree(dir, {
      "plugins/M/plugin.ts": completePlugin("export class M extends Plugin {\n  go() {}\n}\n"),
      "plugins/M/plugin_config.yml":
        "endpoints:\n  - internal_name: go\n    arguments:\n      - name: x\n",
    });
    const core = track(
      new PluginCore({
        plugins: [{ name: "M" }],
        general: { console_log_level: "CRITICAL", log_dir: "" },
        baseDir: dir,
      }),
    );
    await core.start();
    const info = core.getPluginInfo("M") as unknown as Record<string, unknown>;
    const endpoint = core.getPluginEndpoints("M")?.[0] as unknown as Record<string, unknown>;
    const argument = (endpoint.arguments as Array<Record<string, unknown>>)[0] as Record<
      string,
      unknown
    >;
    const check = (heading: string, actual: Record<string, unknown>, skip: string[]) => {
      for (const row of tableAfter(CONFIGURATION, heading)) {
        expect(["seed", "added"], `${heading} ${row.key} origin`).toContain(row.cells[3]);
        if (skip.includes(row.key)) continue;
        if (row.cells[2] === "the `internal_name`") {
          expect(actual[row.key]).toBe(actual.internal_name);
          continue;
        }
        const documented = documentedDefault(row.cells[2] ?? "");
        expect(documented, `${heading} ${row.key}: a default`).toBeDefined();
        if (documented?.value === undefined) expect(Object.hasOwn(actual, row.key)).toBe(false);
        else expect(actual[row.key], `${heading} ${row.key}`).toEqual(documented.value);
      }
    };
    // Not visible in PluginInfo: the plugin's own arguments, endpoints (checked below), isolation
    // (the config's choice wins), resource_limits and watch.
    check("## plugin_config.yml", info, [
      "arguments",
      "endpoints",
      "isolation",
      "resource_limits",
      "watch",
    ]);
    check("### `endpoints`", endpoint, ["internal_name", "arguments"]);
    check("### `arguments` of an endpoint", argument, ["name"]);
    await core.close();
  });

  it("the complete config.yml loads without a warning, as its comments say", async () => {
    const dir = tempDir("aio-docs-config-");
    writeTree(dir, { "config.yml": fileBlock(CONFIGURATION, "config.yml").code });
    const core = new PluginCore(join(dir, "config.yml"));
    const { plugins, general } = core.config;
    await core.close();
    expect(warningsIn(core.logFile)).toEqual([]);
    expect(core.logFile?.startsWith(join(dir, "logs", "AIO_AI_"))).toBe(true);
    expect(core.hostname).toBe(hostname());
    expect(general.plugin_package).toBe(join(dir, "plugins_test"));
    expect(plugins.map((p) => [p.name, p.path, p.enabled])).toEqual([
      ["PluginA", join(dir, "plugins_test", "pluginA_v1"), true],
      ["PluginB", join(dir, "plugins_test", "PluginB"), true],
      ["Weather", join(dir, "plugins_test", "Weather"), true],
      ["Archive", join(dir, "plugins_test", "Archive"), false],
    ]);
    expect(plugins[2]?.arguments).toEqual({ unit: "F" });
  });

  it("the complete plugin_config.yml loads without a warning, as its comments say", async () => {
    const dir = tempDir("aio-docs-notes-");
    const methods = [
      "  add_note(text: string, pinned: boolean) {",
      "    return [text, pinned, this.arguments];",
      "  }",
      "  *list_notes(limit = 2) {",
      "    for (let i = 0; i < limit; i++) yield i;",
      "  }",
    ].join("\n");
    writeTree(dir, {
      "plugins/Notes/plugin_config.yml": fileBlock(CONFIGURATION, "plugins/Notes/plugin_config.yml")
        .code,
      "plugins/Notes/plugin.ts": completePlugin(
        `export class Notes extends Plugin {\n${methods}\n}\n`,
      ),
    });
    const core = new PluginCore({
      plugins: [{ name: "Notes" }],
      general: { console_log_level: "CRITICAL", log_dir: "logs" },
      baseDir: dir,
    });
    await core.start();
    expect(core.getPluginInfo("Notes")).toMatchObject({
      state: "enabled",
      version: "1.0.0",
      description: "Keeps notes",
    });
    expect(
      core
        .getPluginEndpoints("Notes")
        ?.map((e) => [e.access_name, e.kind, e.accessible_by_other_plugins]),
    ).toEqual([
      ["add", "function", true],
      ["list_notes", "generator", false],
    ]);
    await expect(core.execute("Notes", "add", { text: "hi" })).resolves.toEqual([
      "hi",
      false,
      { max_notes: 100 },
    ]);
    expect((await rejection(core.execute("Notes", "add", {}))).code).toBe("INVALID_ARGUMENTS");
    expect(await collect(core.executeStream("Notes", "list_notes"))).toEqual([0, 1]);
    await core.close();
    expect(warningsIn(core.logFile)).toEqual([]);
  });

  it("the error example: ConfigError's message is the one shown", () => {
    const dir = tempDir("aio-docs-mistakes-");
    const bad = fileBlock(CONFIGURATION, "config.yml with mistakes");
    const shown = nextBlock(CONFIGURATION, bad).code.trimEnd();
    writeTree(dir, { "config.yml": bad.code });
    let error: unknown;
    try {
      track(new PluginCore(join(dir, "config.yml")));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    // The file is shown relative to the working directory when inside it; here it is not.
    const relative = (text: string) => text.split(`${dir}/`).join("");
    expect(relative(configError.message)).toBe(shown);
    expect(configError.problems.map(relative)).toEqual(shown.split("\n"));
    expect(configError.code).toBe("CONFIG_INVALID");
    expect(configError.file).toBe(join(dir, "config.yml"));
    expect([configError.line, configError.key]).toEqual([5, "plugins[0].isolation"]);
  });

  it("the unknown-key example: the warning is the one shown, and the node starts", async () => {
    const dir = tempDir("aio-docs-typo-");
    const typo = fileBlock(CONFIGURATION, "config.yml with a typo");
    const shown = nextBlock(CONFIGURATION, typo).code.trimEnd();
    writeTree(dir, { "config.yml": typo.code });
    const core = new PluginCore(join(dir, "config.yml"));
    expect(core.config.plugins[0]?.enabled).toBe(true);
    await core.close();
    expect(warningsIn(core.logFile).map((w) => w.split(dir).join("/srv/aio"))).toEqual([shown]);
  });

  it("the ConfigObject example resolves paths against baseDir", async () => {
    const code = snippet(CONFIGURATION, "baseDir:").code;
    const core = track((await runSnippet(code, {}, "return core;")) as PluginCore);
    expect(core.config.general.plugin_package).toBe(resolve("/srv/aio", "plugins"));
    expect(core.config.general.console_log_level).toBe("WARNING");
    expect(core.logFile).toBeUndefined();
    await core.close();
  });
});

// ------------------------------------------------------------------------------ docs/api.md

describe("docs/api.md", () => {
  const API = "docs/api.md";
  const text = () => readFileSync(join(REPO_ROOT, API), "utf8");

  it("names every export of the package root", () => {
    const doc = text();
    const declared = readFileSync(join(REPO_ROOT, "dist", "index.d.ts"), "utf8");
    const names = new Set(Object.keys(aio));
    for (const match of declared.matchAll(/export (?:type )?\{([^}]*)\}/g)) {
      for (const part of (match[1] as string).split(",")) {
        const name = part.trim().replace(/^type\s+/, "");
        if (name !== "") names.add(name);
      }
    }
    const missing = [...names].filter(
      (name) => !doc.includes(`\`${name}\``) && !doc.includes(` ${name},`),
    );
    expect(missing).toEqual([]);
  });

  it("documents every method and property of PluginCore and Plugin", () => {
    const doc = text();
    const members = (proto: object) =>
      Object.getOwnPropertyNames(proto).filter((name) => name !== "constructor");
    const missing = [
      ...members(PluginCore.prototype),
      ...members(aio.Plugin.prototype),
      "hostname",
      "pluginName",
      "version",
      "description",
      "remote",
    ].filter((name) => !doc.includes(`\`${name}\``) && !doc.includes(`\`${name}(`));
    expect(missing).toEqual([]);
  });

  it('"Error codes" lists every code, with its HTTP status', () => {
    const doc = text();
    expect(doc).toContain("### Error codes"); // the #error-codes anchor
    const requestRows = tableAfter(API, "### Error codes");
    expect(requestRows.map((r) => r.key).sort()).toEqual(Object.keys(REQUEST_ERROR_STATUS).sort());
    for (const row of requestRows) {
      const status = REQUEST_ERROR_STATUS[row.key as keyof typeof REQUEST_ERROR_STATUS];
      expect(Number(row.cells[1]), row.key).toBe(status);
      expect(new RequestError(row.key as keyof typeof REQUEST_ERROR_STATUS, "").status).toBe(
        status,
      );
    }
    const source = readFileSync(join(REPO_ROOT, "src", "errors.ts"), "utf8");
    const otherCodes = new Set<string>();
    for (const line of source.split("\n").filter((l) => /^export type \w*ErrorCode =/.test(l))) {
      for (const m of line.matchAll(/"([A-Z_]+)"/g)) otherCodes.add(m[1] as string);
    }
    const otherRows = tableAfter(API, "Other codes (no HTTP status):");
    expect(otherRows.map((r) => r.key).sort()).toEqual([...otherCodes].sort());
  });

  it("the PluginCore example runs: calculate_square(6) is 36", async () => {
    const code = snippet(API, "calculate_square", "PluginCore").code;
    const data = parse(readFileSync(join(EXAMPLES, "config.yml"), "utf8")) as ConfigObject;
    const config: ConfigObject = {
      ...data,
      plugins: (data.plugins ?? []).filter((p) => p.name === "PluginB"),
      general: { ...data.general, console_log_level: "CRITICAL", log_dir: "" },
      baseDir: EXAMPLES,
    };
    const square = await runSnippet(
      code,
      { PluginCore: docCore(EXAMPLES, { config }) },
      "return square;",
    );
    expect(String(square)).toBe(commentAfter(code, "calculate_square"));
  });
});

// ------------------------------------------------------------------------------ docs/from-python.md

describe("docs/topics.md", () => {
  const TOPICS = "docs/topics.md";

  it("the sensor on one node and the thermostat on another: readings arrive, converted by topic", async () => {
    const dir = tempDir("aio-docs-topics-");
    const file = (name: string) => fileBlock(TOPICS, name).code;
    writeTree(dir, {
      "package.json": '{ "type": "module" }\n',
      "plugins/KitchenSensor/plugin.ts": file("plugins/KitchenSensor/plugin.ts"),
      "plugins/KitchenSensor/plugin_config.yml": file("plugins/KitchenSensor/plugin_config.yml"),
      "plugins/Thermostat/plugin.ts": file("plugins/Thermostat/plugin.ts"),
      "plugins/Thermostat/plugin_config.yml": file("plugins/Thermostat/plugin_config.yml"),
    });
    const node = (yamlName: string, extra: Record<string, unknown>) => {
      const config = parse(file(yamlName)) as ConfigObject;
      return track(
        new PluginCore({
          ...config,
          baseDir: dir,
          general: { ...config.general, console_log_level: "CRITICAL", log_dir: "" },
          networking: { ...config.networking, port: 0, bind: "127.0.0.1", ...extra },
          plugins: (config.plugins ?? []).map((entry) =>
            entry.name === "KitchenSensor"
              ? { ...entry, arguments: { room: "kitchen", every_ms: 20 } }
              : entry,
          ),
        }),
      );
    };
    const laptop = node("laptop/config.yml", {});
    await laptop.start();
    const pi = node("pi/config.yml", { node_ips: [`127.0.0.1:${laptop.port}`] });
    await pi.start();
    let readings: Array<{ room: string; celsius: number; fahrenheit: number }> = [];
    const deadline = Date.now() + 10_000;
    while (readings.length < 2 && Date.now() < deadline) {
      readings = await laptop.execute("Thermostat", "readings");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(readings.length).toBeGreaterThanOrEqual(2);
    for (const reading of readings) {
      expect(reading.room).toBe("kitchen");
      expect(reading.fahrenheit).toBe(Math.round((reading.celsius * 9) / 5 + 32));
    }
    const tagged = await pi.findEndpointsByTag("sensor");
    expect(tagged.map((t) => `${t.hostname} ${t.plugin}.${t.endpoint.access_name}`).sort()).toEqual(
      ["laptop Thermostat.readings", "pi KitchenSensor.read"],
    );
  });
});

describe("docs/from-python.md", () => {
  const FROM_PYTHON = "docs/from-python.md";
  const SECTION = "Porting a plugin, step by step";

  function myPluginFiles(): Record<string, string> {
    return {
      "plugins_test/MyPlugin/plugin.ts": fileBlock(
        FROM_PYTHON,
        "plugins_test/MyPlugin/plugin.ts",
        SECTION,
      ).code,
      "plugins_test/MyPlugin/plugin_config.yml": fileBlock(
        FROM_PYTHON,
        "plugins_test/MyPlugin/plugin_config.yml",
        SECTION,
      ).code,
      "config.yml": fileBlock(FROM_PYTHON, "config.yml", SECTION).code,
    };
  }

  it("the ported MyPlugin loads from the seed's manifest and config.yml as they are", async () => {
    const dir = tempDir("aio-docs-from-python-");
    const files = myPluginFiles();
    writeTree(dir, files);
    const core = track(new PluginCore(quietConfig(files["config.yml"] as string, dir)));
    await core.start();
    expect(core.getPluginInfo("MyPlugin")).toMatchObject({
      state: "enabled",
      version: "1.0.0",
      description: "My custom plugin",
      remote: true,
    });
    expect(core.getPluginEndpoints("MyPlugin")?.map((e) => [e.access_name, e.kind])).toEqual([
      ["my_method", "async function"],
    ]);
    await expect(core.execute("MyPlugin", "my_method", [2, 3])).resolves.toBe(5);
    await expect(core.execute("MyPlugin", "my_method", { arg1: 2, arg2: 3 })).resolves.toBe(5);
    // What the page says the port gained.
    const wrong = await rejection(core.execute("MyPlugin", "my_method", ["2", 3]));
    expect(wrong.code).toBe("INVALID_ARGUMENTS");
    expect(wrong.message).toContain("arg1");
    await expect(core.execute("MyPlugin", "my_method", [2])).resolves.toBeNaN();
    await core.close();
  });

  it("main.ts prints what its comment says, run with tsx, and the node logs Plugin enabled!", () => {
    const main = fileBlock(FROM_PYTHON, "main.ts", SECTION).code;
    const dir = tempDir("aio-docs-from-python-main-");
    writeTree(dir, { ...myPluginFiles(), "main.ts": main });
    linkPackage(dir);
    const run = runTsx(dir, "main.ts");
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe(`${commentAfter(main, "console.log")}\n`);
    expect(run.stderr).toContain("Plugin enabled!");
    expect(run.stderr).not.toMatch(/\b(WARN|ERROR|FATAL)\b/);
  });

  it("names every public method of PluginCore and Plugin", () => {
    const doc = readFileSync(join(REPO_ROOT, FROM_PYTHON), "utf8");
    const members = (proto: object) =>
      Object.getOwnPropertyNames(proto).filter(
        (name) =>
          name !== "constructor" &&
          typeof Object.getOwnPropertyDescriptor(proto, name)?.value === "function",
      );
    const missing = [...members(PluginCore.prototype), ...members(aio.Plugin.prototype)].filter(
      (name) => !doc.includes(`${name}(`) && !doc.includes(`\`${name}\``),
    );
    expect(missing).toEqual([]);
  });
});

// ------------------------------------------------------------------------------ type checks

describe("every TypeScript block of the docs", () => {
  it("type-checks against the package's types", () => {
    const dir = tempDir("aio-docs-types-");
    linkPackage(dir);
    const files: Record<string, string> = {};
    for (const doc of [
      "README.md",
      "docs/plugins.md",
      "docs/configuration.md",
      "docs/api.md",
      "docs/from-python.md",
      "docs/topics.md",
    ]) {
      // Usage examples; blocks that only list signatures are not code to compile.
      const examples = blocksOf(doc).filter(
        (b) =>
          b.lang === "ts" &&
          (b.code.includes('from "aio-assistant-core"') ||
            /\bcore\.\w/.test(b.code) ||
            /\bextends Plugin\b/.test(b.code)),
      );
      for (const block of examples) {
        let code = block.code;
        if (/\bextends Plugin\b/.test(code)) code = completePlugin(code);
        // Snippets that use a core they do not create get one declared.
        if (/\bcore\.\w/.test(code) && !/\bconst core\b/.test(code)) {
          code = `import type { PluginCore as __Core } from "aio-assistant-core";\ndeclare const core: __Core;\n${code}`;
        }
        const name = `${doc.replace(/[/.]/g, "_")}_${block.index}.ts`;
        files[name] = `${code}\nexport {};\n`;
      }
    }
    writeTree(dir, files);
    const program = ts.createProgram(
      Object.keys(files).map((name) => join(dir, name)),
      {
        strict: true,
        noImplicitOverride: true,
        noUncheckedIndexedAccess: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        moduleResolution: ts.ModuleResolutionKind.Bundler,
        lib: ["lib.es2023.d.ts"],
        types: ["node"],
        typeRoots: [join(REPO_ROOT, "node_modules", "@types")],
        skipLibCheck: true,
        noEmit: true,
      },
    );
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
      if (!d.file || d.start === undefined) return message;
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      return `${d.file.fileName.slice(dir.length + 1)}:${line + 1}: ${message}`;
    });
    expect(problems).toEqual([]);
  });
});
