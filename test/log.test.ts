import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createLogging, type Logging, RECENT_LOG_LINES, toPinoLevel } from "../src/log.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const logModule = path.join(root, "src", "log.ts");

const tempDirs: string[] = [];
const open: Logging[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "aio-log-"));
  tempDirs.push(dir);
  return dir;
}

function logging(...args: Parameters<typeof createLogging>): Logging {
  const l = createLogging(...args);
  open.push(l);
  return l;
}

function readLines(file: string): Record<string, unknown>[] {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe("toPinoLevel", () => {
  it("maps the Python level names", () => {
    expect(toPinoLevel("DEBUG")).toBe("debug");
    expect(toPinoLevel("INFO")).toBe("info");
    expect(toPinoLevel("WARNING")).toBe("warn");
    expect(toPinoLevel("ERROR")).toBe("error");
    expect(toPinoLevel("CRITICAL")).toBe("fatal");
  });
});

describe("log file", () => {
  it("is named AIO_AI_YYYY-MM-DD_HH-MM-SS.log in logDir, which is created if missing", async () => {
    const dir = path.join(tempDir(), "nested", "logs");
    const l = logging({ level: "CRITICAL", logDir: dir });
    expect(l.file).toBeDefined();
    const file = l.file as string;
    expect(path.isAbsolute(file)).toBe(true);
    expect(path.dirname(file)).toBe(dir);
    expect(path.basename(file)).toMatch(/^AIO_AI_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.log$/);
    l.logger.error("x");
    await l.close();
    expect(fs.existsSync(file)).toBe(true);
  });

  it("holds JSON lines with level, msg and plugin, DEBUG included when the console is at ERROR", async () => {
    const l = logging({ level: "ERROR", logDir: tempDir(), name: "core" });
    expect(l.logger.level).toBe("debug");
    l.logger.debug("core debug");
    l.logger.info({ n: 1 }, "core info");
    l.forPlugin("PluginX").debug("plugin debug");
    l.forPlugin("PluginX").warn("plugin warn");
    await l.close();

    const lines = readLines(l.file as string);
    expect(lines.map((line) => line.msg)).toEqual([
      "core debug",
      "core info",
      "plugin debug",
      "plugin warn",
    ]);
    expect(lines.map((line) => line.level)).toEqual([20, 30, 20, 40]);
    expect(lines[0]).toMatchObject({ name: "core" });
    expect(lines[0]).not.toHaveProperty("plugin");
    expect(lines[1]).toMatchObject({ n: 1 });
    expect(lines[2]).toMatchObject({ plugin: "PluginX", name: "core" });
    expect(lines[0]).not.toHaveProperty("pid");
    expect(lines[0]).not.toHaveProperty("hostname");
  });

  it("gets every one of 10,000 lines once close() resolves", async () => {
    const l = logging({ level: "CRITICAL", logDir: tempDir() });
    const log = l.forPlugin("Busy");
    for (let i = 0; i < 10_000; i++) log.info({ i }, "line with some padding to make it longer");
    await l.close();

    const lines = readLines(l.file as string);
    expect(lines).toHaveLength(10_000);
    expect(lines.every((line, i) => line.i === i && line.plugin === "Busy")).toBe(true);
  });

  it("throws from createLogging when logDir cannot be created", () => {
    const blocker = path.join(tempDir(), "not-a-dir");
    fs.writeFileSync(blocker, "");
    expect(() => createLogging({ level: "INFO", logDir: path.join(blocker, "logs") })).toThrow(
      /ENOTDIR|EEXIST/,
    );
  });

  it("is absent when logDir is empty; the logger then lets INFO through, for the tail alone", async () => {
    const l = logging({ level: "WARNING", logDir: "" });
    expect(l.file).toBeUndefined();
    expect(l.logger.level).toBe("info");
    await l.close();
  });
});

describe("tail", () => {
  it("keeps the recent INFO lines and above whatever the console shows, then follows new ones", async () => {
    const l = logging({ level: "ERROR", logDir: "" });
    l.logger.debug("not kept");
    l.logger.info("first");
    l.forPlugin("P").warn("second");
    const lines = l.tail.lines();
    const first = await lines.next();
    expect(first.value).toMatchObject({ level: "INFO", message: "first" });
    expect((await lines.next()).value).toMatchObject({
      level: "WARNING",
      source: "P",
      message: "second",
    });
    const next = lines.next();
    l.logger.error("third");
    expect((await next).value).toMatchObject({ level: "ERROR", message: "third" });
    await lines.return();
    await l.close();
  });

  it("keeps at most RECENT_LOG_LINES lines", async () => {
    const l = logging({ level: "ERROR", logDir: "" });
    for (let i = 0; i < RECENT_LOG_LINES + 50; i++) l.logger.info(`line ${i}`);
    const recent = l.tail.recent();
    expect(recent).toHaveLength(RECENT_LOG_LINES);
    expect(recent[0]?.message).toBe("line 50");
    await l.close();
  });
});

describe("close", () => {
  it("can be called twice, and logging afterwards neither throws nor writes", async () => {
    const l = logging({ level: "ERROR", logDir: tempDir() });
    const plugin = l.forPlugin("P");
    l.logger.info("before");
    await Promise.all([l.close(), l.close()]);
    await l.close();
    expect(() => {
      l.logger.info("after");
      plugin.error("after");
      l.forPlugin("Q").fatal("after");
    }).not.toThrow();
    await l.close();
    expect(readLines(l.file as string).map((line) => line.msg)).toEqual(["before"]);
  });
});

/** Runs a script using createLogging in a fresh Node process (TypeScript via tsx). */
function runChild(script: string, env: Record<string, string | undefined> = {}) {
  const prelude = `import { createLogging } from ${JSON.stringify(logModule)};\n`;
  const result = spawnSync(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "--eval", prelude + script],
    { cwd: root, encoding: "utf8", timeout: 15_000, env: { ...process.env, ...env } },
  );
  expect(result.error).toBeUndefined();
  // Node's footer after an uncaught exception.
  expect(result.stderr).not.toMatch(/^Node\.js v\d/m);
  expect(result.status).toBe(0);
  return result;
}

const consoleScript = (options: string) => `
  const l = createLogging({ level: "INFO", logDir: "", name: "core", ${options} });
  l.logger.debug("hidden debug");
  l.logger.info("core says hi");
  l.forPlugin("PluginX").warn({ extra: 42 }, "plugin says hi");
  await l.close();
  l.logger.error("after close");
`;

// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for ANSI escapes
const ANSI = /\u001b\[/;

describe("console", () => {
  it("writes readable lines to stderr only, without colors when color is false", () => {
    const { stdout, stderr } = runChild(consoleScript("color: false"));
    expect(stdout).toBe("");
    expect(stderr).not.toMatch(ANSI);
    const lines = stderr.split("\n").filter((line) => line !== "");
    expect(lines[0]).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: \[core\] core says hi$/);
    expect(lines[1]).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] WARN: \[PluginX\] plugin says hi$/);
    expect(stderr).toContain("extra: 42");
    expect(stderr).not.toContain("hidden debug");
    expect(stderr).not.toContain("after close");
    expect(stderr).not.toMatch(/pid|hostname/);
  });

  it("has no colors when NO_COLOR is set, and colors when forced", () => {
    const plain = runChild(consoleScript(""), { NO_COLOR: "1" });
    expect(plain.stderr).toContain("[PluginX] plugin says hi");
    expect(plain.stderr).not.toMatch(ANSI);

    const colored = runChild(consoleScript("color: true"), { NO_COLOR: "1" });
    expect(colored.stderr).toContain("[PluginX] plugin says hi");
    expect(colored.stderr).toMatch(ANSI);
    expect(colored.stdout).toBe("");
  });

  it("reports a failing log file on the console, goes on, and still exits cleanly", () => {
    const dir = tempDir();
    const { stdout, stderr } = runChild(`
      import fs from "node:fs";
      const write = fs.write;
      fs.write = (fd, ...rest) => {
        if (fd === 2) return write(fd, ...rest);
        const err = Object.assign(new Error("no space left"), { code: "ENOSPC" });
        rest.at(-1)(err);
      };
      const l = createLogging({ level: "INFO", logDir: ${JSON.stringify(dir)}, color: false });
      l.logger.info("first");
      await new Promise((resolve) => setTimeout(resolve, 50));
      l.logger.info("still here");
      await l.close();
    `);
    expect(stdout).toBe("");
    expect(stderr).toContain("failed; logging to the console only");
    expect(stderr).toContain("no space left");
    expect(stderr).toContain("still here");
  });

  it("strips terminal control characters from messages", () => {
    const { stderr } = runChild(`
      const l = createLogging({ level: "INFO", logDir: "", color: false });
      l.forPlugin("Evil\\u001b[31m").info("a\\u001b[2Jb\\u0007c");
      await l.close();
    `);
    expect(stderr).not.toMatch(ANSI);
    expect(stderr).toContain("[Evil[31m] a[2Jbc");
  });
});
