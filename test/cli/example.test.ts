/**
 * The README's commands on the bundled example (examples/config.yml), as a user runs them from
 * a folder without a config.yml: `aio call` prints its result or its one `CODE: message` line
 * and nothing else, however the example's start-up interop run and the command's close fall;
 * `aio run` (what `npm start` runs) shows the interop matrix passing, and shows a real FAIL.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  aio,
  REPO_ROOT,
  removeTempDirs,
  startNode,
  stopNodes,
  tempDir,
  writeTree,
} from "./helpers.js";

const EXAMPLES = join(REPO_ROOT, "examples");
const BUNDLED = join(EXAMPLES, "config.yml");
/** What `aio` says on stderr when it falls back to the bundled example. */
const FALLBACK = `aio: using ${BUNDLED} (no ./config.yml here, so the bundled example)\n`;

/**
 * Each `aio` here starts the seven example plugins, one in a worker: about 1 s of CPU. The
 * tests run one after another (not concurrently), and each gets this budget for its at most
 * six such processes, enough on two CPUs shared with ten other busy processes.
 */
const BUDGET = 60_000;

afterAll(async () => {
  await stopNodes();
  removeTempDirs();
});

describe("the bundled example on the command line", () => {
  it("aio call prints its result and nothing else, run after run", {
    timeout: BUDGET,
  }, async () => {
    // The example's InteropCaller starts its interop matrix when it is enabled, and `aio call`
    // closes the core as soon as its call returns: the matrix is cut short, quietly. Before
    // the fix 3 runs in 4 printed an ERROR line of a FAIL that was only the close.
    const dir = tempDir();
    for (let round = 0; round < 3; round++) {
      const [square, operation] = await Promise.all([
        aio(["call", "PluginB", "calculate_square", "6"], { cwd: dir }),
        aio(["call", "PluginC", "perform_operation", "5"], { cwd: dir }),
      ]);
      expect([square.code, square.stdout, square.stderr]).toEqual([0, "36\n", FALLBACK]);
      expect([operation.code, operation.stdout, operation.stderr]).toEqual([0, "25\n", FALLBACK]);
    }
  });

  it("an error of aio call is printed once, as CODE: message, with exit 1", {
    timeout: BUDGET,
  }, async () => {
    const dir = tempDir();
    const [unknown, wrongArgs] = await Promise.all([
      aio(["call", "Nope", "calculate_square", "6"], { cwd: dir }),
      aio(["call", "PluginB", "calculate_square", '"six"'], { cwd: dir }),
    ]);
    for (const r of [unknown, wrongArgs]) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
    }
    expect(unknown.stderr).toBe(`${FALLBACK}PLUGIN_NOT_FOUND: No plugin named "Nope"\n`);
    expect(wrongArgs.stderr).toBe(
      `${FALLBACK}INVALID_ARGUMENTS: PluginB.calculate_square: argument "number" must be number, got string "six"\n`,
    );
  });

  it("aio run (npm start): the interop matrix and the topic cases pass, one PASS line per case", {
    timeout: BUDGET,
  }, async () => {
    const node = await startNode(tempDir(), [BUNDLED]);
    await node.waitFor(/interop_run_sync: \w+/, 15_000, "stderr");
    await node.waitFor(/topics_run: \w+/, 15_000, "stderr");
    expect(node.stderr).toContain("interop_run: OK");
    expect(node.stderr).toContain("interop_run_sync: OK");
    expect(node.stderr).toContain("topics_run: OK");
    expect(node.stderr.match(/\[InteropCaller\] \[\w+\] PASS - /g)).toHaveLength(10);
    expect(node.stderr.match(/\[NotifierPublisher\] \[\w+\] PASS - /g)).toHaveLength(8);
    expect(node.stderr).not.toMatch(/FAIL|ERROR/);
    expect((await node.stop("SIGTERM")).code).toBe(0);
  });

  it("aio run: a real FAIL of the interop matrix still shows as an ERROR line", {
    timeout: BUDGET,
  }, async () => {
    // The example's InteropCaller against an InteropTarget whose it_sync_add is off by one.
    const dir = tempDir();
    const target = join(EXAMPLES, "plugins_test", "InteropTarget");
    const code = readFileSync(join(target, "plugin.ts"), "utf8").replace(
      "return a + b;\n  }\n\n  async async_add",
      "return a + b + 1;\n  }\n\n  async async_add",
    );
    expect(code).toContain("a + b + 1");
    writeTree(dir, {
      "plugins/InteropTarget/plugin.ts": code,
      "plugins/InteropTarget/plugin_config.yml": readFileSync(
        join(target, "plugin_config.yml"),
        "utf8",
      ),
      "config.yml": `plugins:
  - name: InteropTarget
    enabled: true
  - name: InteropCaller
    enabled: true
    path: ${join(EXAMPLES, "plugins_test", "InteropCaller")}
    isolation: worker
    arguments:
      run_on_enable: true
general:
  plugin_package: plugins
  console_log_level: INFO
  log_dir: ""
`,
    });
    const node = await startNode(dir, ["config.yml"]);
    await node.waitFor(/interop_run_sync: \w+/, 15_000, "stderr");
    expect(node.stderr).toMatch(
      /ERROR: \[InteropCaller\] \[val_async_to_sync_kwargs\] FAIL - got=16 expected=15/,
    );
    expect(node.stderr).toContain("interop_run: FAIL (2 failed)");
    expect(node.stderr).toContain("interop_run_sync: FAIL (2 failed)");
    expect((await node.stop("SIGTERM")).code).toBe(0);
  });
});
