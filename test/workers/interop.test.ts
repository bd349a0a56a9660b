/**
 * Calls made by a worker plugin: to main-thread plugins and to other worker plugins, with
 * execute, executeStream, executeSync and executeStreamSync. Blocking calls block only the
 * worker's thread, so they may reach async targets. Cycles of blocking calls are refused with
 * WOULD_DEADLOCK, never a hang. The example InteropCaller passes both matrices in a worker.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  cleanup,
  kindsPlugin,
  newCore,
  open,
  pluginClass,
  recorder,
  rejection,
  sharedCore,
  startWith,
  thrown,
  until,
} from "./helpers.js";

afterAll(cleanup);

const EXAMPLES = fileURLToPath(new URL("../../examples/plugins_test/", import.meta.url));

/** A worker-side caller: each endpoint runs one way of calling `target` and reports. */
const CALLER = pluginClass(
  "Caller",
  `
  async viaExecute(target: string) {
    return [
      await this.execute(target, "add", [2, 3]),
      await this.execute(target, "addAsync", { a: 7, b: 8 }),
      await this.execute(target, "add", 5),
    ];
  }
  async viaStream(target: string) {
    const out: unknown[] = [];
    for await (const item of this.executeStream(target, "count", [3, "g"])) out.push(item);
    for await (const item of this.executeStream(target, "countAsync", { n: 2, prefix: "ag" })) out.push(item);
    return out;
  }
  viaSync(target: string) {
    return [
      this.executeSync(target, "add", [4, 6]),
      this.executeSync(target, "addAsync", [9, 1]),
      this.executeSync(target, "addAsync", 6),
    ];
  }
  viaStreamSync(target: string) {
    return [
      ...this.executeStreamSync(target, "count", [2, "sx"]),
      ...this.executeStreamSync(target, "countAsync", [2, "ax"]),
    ];
  }
  where(target: string) {
    return { me: isMainThread, target: this.executeSync(target, "where") };
  }
  /** Errors as the worker sees them: code, class and message. */
  async errors(target: string) {
    const seen: Record<string, unknown> = {};
    const grab = async (key: string, work: () => unknown) => {
      try { await work(); seen[key] = "resolved"; }
      catch (e: any) { seen[key] = { code: e.code, isRequestError: e instanceof RequestError, message: e.message }; }
    };
    await grab("threw", () => this.execute(target, "fail", ["from target"]));
    await grab("threwSync", () => this.executeSync(target, "fail", ["from target sync"]));
    await grab("wrongKind", () => this.execute(target, "count", [1]));
    await grab("invalid", () => this.execute(target, "add", ["x"]));
    await grab("invalidSync", () => this.executeSync(target, "add", ["x"]));
    await grab("missing", () => this.execute("NoSuchPlugin", "x"));
    await grab("missingSync", () => this.executeSync("NoSuchPlugin", "x"));
    await grab("private", () => this.execute(target, "secret"));
    await grab("streamThrew", async () => { for await (const _ of this.executeStream(target, "count", ["bad"])) {} });
    await grab("fnArg", () => this.execute(target, "echo", [() => 1]));
    await grab("fnArgSync", () => this.executeSync(target, "echo", [() => 1]));
    return seen;
  }
  async breakEarly(target: string) {
    const got: unknown[] = [];
    for await (const item of this.executeStream(target, "endless")) { got.push(item); if (got.length === 3) break; }
    return got;
  }
  breakEarlySync(target: string) {
    const got: unknown[] = [];
    for (const item of this.executeStreamSync(target, "endless")) { got.push(item); if (got.length === 2) break; }
    return got;
  }
  author(target: string) { return this.executeSync(target, "author"); }
  async authorAsync(target: string) { return this.execute(target, "author"); }`,
  `import { isMainThread } from "node:worker_threads";\nimport { RequestError } from "aio-assistant-core";`,
);

const CALLER_DEF = {
  code: CALLER,
  manifest: {
    endpoints: [
      "viaExecute",
      "viaStream",
      "viaSync",
      "viaStreamSync",
      "where",
      "errors",
      "breakEarly",
      "breakEarlySync",
      "author",
      "authorAsync",
    ].map((name) => open(name, ["target"])),
  },
};

/** A target: the kinds plugin plus a private endpoint, an endless generator and `author`. */
function target(name: string, rec?: ReturnType<typeof recorder>) {
  const base = kindsPlugin(name);
  const body = (base.code as string).replace(
    /\n}\n$/,
    `
  secret() { return "secret"; }
  *endless() { let i = 0; try { for (;;) yield i++; } finally { ${rec ? rec.push(`"closed ${name}"`) : ""} this.closedCount++; } }
  closedCount = 0;
  closed() { return this.closedCount; }
  author() { return this.currentCall?.author ?? null; }
}
`,
  );
  const spec = base.manifest as { endpoints: unknown[] };
  return {
    code: body,
    manifest: {
      endpoints: [
        ...spec.endpoints,
        { internal_name: "secret", accessible_by_other_plugins: false },
        open("endless"),
        open("closed"),
        open("author"),
      ],
    },
  } as never;
}

describe("a worker plugin calls other plugins", () => {
  const rec = recorder();
  for (const targetIsWorker of [false, true]) {
    const label = targetIsWorker ? "another worker plugin" : "a main-thread plugin";
    const shared = sharedCore(() =>
      startWith({
        Caller: { def: CALLER_DEF, worker: true },
        Target: { def: target("Target", targetIsWorker ? undefined : rec), worker: targetIsWorker },
      }),
    );
    const setup = async () => shared();

    it(`${label}: execute and executeStream, every kind`, async () => {
      const { core } = await setup();
      await expect(core.execute("Caller", "viaExecute", ["Target"])).resolves.toEqual([5, 15, 6]);
      await expect(core.execute("Caller", "viaStream", ["Target"])).resolves.toEqual([
        "g0",
        "g1",
        "g2",
        "ag0",
        "ag1",
      ]);
    });

    it(`${label}: executeSync and executeStreamSync, async targets included`, async () => {
      const { core } = await setup();
      await expect(core.execute("Caller", "viaSync", ["Target"])).resolves.toEqual([10, 10, 7]);
      await expect(core.execute("Caller", "viaStreamSync", ["Target"])).resolves.toEqual([
        "sx0",
        "sx1",
        "ax0",
        "ax1",
      ]);
      const where = (await core.execute("Caller", "where", ["Target"])) as {
        me: boolean;
        target: { isMainThread: boolean };
      };
      expect(where.me).toBe(false);
      expect(where.target.isMainThread).toBe(!targetIsWorker);
    });

    it(`${label}: errors keep their codes and class on the way back`, async () => {
      const { core } = await setup();
      const seen = (await core.execute("Caller", "errors", ["Target"])) as Record<
        string,
        { code: string; isRequestError: boolean; message: string }
      >;
      const codes = Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, v.code]));
      expect(codes).toEqual({
        threw: "PLUGIN_ERROR",
        threwSync: "PLUGIN_ERROR",
        wrongKind: "WRONG_KIND",
        invalid: "INVALID_ARGUMENTS",
        invalidSync: "INVALID_ARGUMENTS",
        missing: "PLUGIN_NOT_FOUND",
        missingSync: "PLUGIN_NOT_FOUND",
        private: "ACCESS_DENIED",
        streamThrew: "INVALID_ARGUMENTS",
        fnArg: "INVALID_ARGUMENTS",
        fnArgSync: expect.anything(),
      });
      for (const key of [
        "threw",
        "wrongKind",
        "invalid",
        "missing",
        "private",
        "streamThrew",
        "fnArg",
      ]) {
        expect(seen[key]?.isRequestError, key).toBe(true);
      }
      expect(seen.threw?.message).toMatch(/from target/);
      expect(seen.threwSync?.message).toMatch(/from target sync/);
      expect(seen.fnArg?.message).toMatch(/cannot cross|could not be cloned/i);
      expect(seen.fnArgSync?.message).toMatch(/cannot cross|could not be cloned/i);
    });

    it(`${label}: errors of executeSync inside a worker are RequestError instances`, async () => {
      const { core } = await setup();
      const seen = (await core.execute("Caller", "errors", ["Target"])) as Record<
        string,
        { code: string; isRequestError: boolean }
      >;
      for (const key of ["threwSync", "invalidSync", "missingSync"]) {
        expect(seen[key]?.isRequestError, key).toBe(true);
      }
    });

    it(`${label}: a function passed to executeSync from a worker is INVALID_ARGUMENTS`, async () => {
      const { core } = await setup();
      const seen = (await core.execute("Caller", "errors", ["Target"])) as Record<
        string,
        { code: unknown }
      >;
      expect(seen.fnArgSync?.code).toBe("INVALID_ARGUMENTS");
    });

    it(`${label}: an early break closes the target's generator`, async () => {
      const { core } = await setup();
      await expect(core.execute("Caller", "breakEarly", ["Target"])).resolves.toEqual([0, 1, 2]);
      await until(
        "the target's finally after an async break",
        async () => ((await core.execute("Target", "closed")) as number) >= 1,
      );
      await expect(core.execute("Caller", "breakEarlySync", ["Target"])).resolves.toEqual([0, 1]);
      await until(
        "the target's finally after a sync break",
        async () => ((await core.execute("Target", "closed")) as number) >= 2,
      );
      if (!targetIsWorker) expect(rec.events).toContain("closed Target");
    });

    it(`${label}: the target sees the worker plugin as the author`, async () => {
      const { core } = await setup();
      await expect(core.execute("Caller", "author", ["Target"])).resolves.toBe("Caller");
      await expect(core.execute("Caller", "authorAsync", ["Target"])).resolves.toBe("Caller");
    });
  }

  it("the example InteropCaller passes both interop matrices in a worker", async () => {
    const core = newCore({
      plugins: [
        { name: "InteropTarget", path: join(EXAMPLES, "InteropTarget") },
        {
          name: "InteropCaller",
          path: join(EXAMPLES, "InteropCaller"),
          isolation: "worker",
          arguments: { run_on_enable: false },
        },
      ],
      general: { console_log_level: "CRITICAL", log_dir: "" },
    } as never);
    await core.start();
    expect(core.getPluginInfo("InteropCaller")?.isolation).toBe("worker");
    await expect(core.execute("InteropCaller", "interop_run")).resolves.toBe("OK");
    await expect(core.execute("InteropCaller", "interop_run_sync")).resolves.toBe("OK");
    // From the main thread, blocking on the worker while it makes blocking calls: each of its
    // cases is refused at once (WOULD_DEADLOCK, caught and counted by the suite), no hang.
    const started = Date.now();
    expect(core.executeSync("InteropCaller", "interop_run_sync")).toBe("FAIL (5 failed)");
    expect(Date.now() - started).toBeLessThan(5000);
    await expect(core.execute("InteropCaller", "interop_run_sync")).resolves.toBe("OK");
  });
});

describe("blocking cycles are refused with WOULD_DEADLOCK, never a hang", () => {
  /**
   * Plugin `name` whose `hop(path)` executeSyncs the next plugin of `path` (or answers), and
   * reports a failure as "<name>!<code>:<whether the message says it would deadlock>".
   */
  function hopper(name: string) {
    return {
      code: pluginClass(
        name,
        `
  #said(e: any) { return e.code + ":" + (/WOULD_DEADLOCK|blocked waiting|main thread is blocked/.test(String(e.message)) ? "deadlock" : e.message); }
  hop(path: string[]) {
    if (path.length === 0) return "${name} end";
    const [next, ...rest] = path;
    try { return "${name}>" + this.executeSync(next, "hop", [rest]); }
    catch (e: any) { return "${name}!" + this.#said(e); }
  }
  hopUncaught(path: string[]) {
    if (path.length === 0) return "${name} end";
    const [next, ...rest] = path;
    return "${name}>" + this.executeSync(next, "hopUncaught", [rest]);
  }
  hopStream(path: string[]) {
    if (path.length === 0) return "${name} end";
    const [next, ...rest] = path;
    try { return "${name}>" + [...this.executeStreamSync(next, "gen", [rest])].join(","); }
    catch (e: any) { return "${name}!" + this.#said(e); }
  }
  *gen(path: string[]) { yield this.hopStream(path); }
  value() { return "${name} value"; }`,
      ),
      manifest: {
        endpoints: [
          open("hop", ["path"]),
          open("hopUncaught", ["path"]),
          open("hopStream", ["path"]),
          open("gen", ["path"]),
          open("value"),
        ],
      },
    };
  }

  const relay = {
    code: pluginClass("R", `  relay() { return this.execute("M", "value"); }`),
    manifest: { endpoints: [open("relay")] },
  };
  const shared = sharedCore(() =>
    startWith({
      A: { def: hopper("A"), worker: true },
      B: { def: hopper("B"), worker: true },
      C: { def: hopper("C"), worker: true },
      M: { def: hopper("M") },
      R: { def: relay, worker: true },
    }),
  );
  const setup = async () => shared();

  /** Runs A.<method>(path) and returns its answer, checking it came back promptly. */
  async function run(
    core: Awaited<ReturnType<typeof setup>>["core"],
    method: string,
    path: string[],
  ): Promise<string> {
    const started = Date.now();
    const answer = (await core.execute("A", method, [path], { timeout: 8000 })) as string;
    expect(Date.now() - started).toBeLessThan(5000);
    return answer;
  }

  it("chains without a cycle work: worker → worker → worker, worker → main, streams", async () => {
    const { core } = await setup();
    expect(await run(core, "hop", ["B", "C"])).toBe("A>B>C end");
    expect(await run(core, "hop", ["M"])).toBe("A>M end");
    expect(await run(core, "hop", ["M", "B"])).toBe("A>M>B end");
    expect(await run(core, "hopStream", ["B", "C"])).toBe("A>B>C end");
  });

  const CYCLES: Array<[string, string, string[], string]> = [
    ["A ⇄ B", "hop", ["B", "A"], "A>B!"],
    ["A → B → C → A", "hop", ["B", "C", "A"], "A>B>C!"],
    ["A → A (itself)", "hop", ["A"], "A!"],
    ["A ⇄ B through executeStreamSync", "hopStream", ["B", "A"], "A>B!"],
    ["A → main M → A (M's executeSync closes it)", "hop", ["M", "A"], "A>M!"],
  ];

  for (const [label, method, path, prefix] of CYCLES) {
    it(`${label}: the call that closes the cycle is refused at once, saying it would deadlock`, async () => {
      const { core } = await setup();
      const answer = await run(core, method, path);
      expect(answer.startsWith(prefix), answer).toBe(true);
      expect(answer.endsWith(":deadlock"), answer).toBe(true);
      // Every thread is free again.
      expect(await run(core, "hop", ["B", "C"])).toBe("A>B>C end");
      await expect(core.execute("M", "value")).resolves.toBe("M value");
    });

    it(`${label}: the refusal has code WOULD_DEADLOCK`, async () => {
      const { core } = await setup();
      expect(await run(core, method, path)).toBe(`${prefix}WOULD_DEADLOCK:deadlock`);
    });
  }

  it("uncaught, the refusal reaches the first caller with a message that says WOULD_DEADLOCK", async () => {
    const { core } = await setup();
    const error = (await core.execute("A", "hopUncaught", [["B", "A"]]).catch((e) => e)) as Error;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toMatch(/WOULD_DEADLOCK|blocked waiting/);
  });

  it("uncaught, the refusal still fails the first call promptly and leaves every plugin serving", async () => {
    const { core } = await setup();
    const started = Date.now();
    const error = await rejection(core.execute("A", "hopUncaught", [["B", "A"]]));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(error.code).toBe("PLUGIN_ERROR");
    await expect(core.execute("A", "value")).resolves.toBe("A value");
    await expect(core.execute("B", "value")).resolves.toBe("B value");
  });

  it("main executeSync into a worker plain function that makes a blocking call: WOULD_DEADLOCK as PLUGIN_ERROR", async () => {
    const { core } = await setup();
    for (const path of [["M"], ["B"], ["A"]]) {
      const started = Date.now();
      const error = thrown(() => core.executeSync("A", "hopUncaught", [path]));
      expect(Date.now() - started).toBeLessThan(5000);
      expect(error.code).toBe("PLUGIN_ERROR");
      expect(error.message).toMatch(/WOULD_DEADLOCK|main thread is blocked/);
      expect((error.cause as { code?: string } | undefined)?.code).toBe("WOULD_DEADLOCK");
    }
    // Caught inside the plugin, it is refused the same way, at once.
    expect(core.executeSync("A", "hop", [["B"]])).toBe("A!WOULD_DEADLOCK:deadlock");
    expect(core.executeSync("A", "hopStream", [["B"]])).toBe("A!WOULD_DEADLOCK:deadlock");
    // And from the main thread through executeStreamSync into a sync generator.
    expect([...core.executeStreamSync("A", "gen", [["B"]])]).toEqual(["A!WOULD_DEADLOCK:deadlock"]);
    // The worker is fine, and so is the rest.
    expect(core.executeSync("A", "value")).toBe("A value");
    await expect(core.execute("A", "hop", [["B", "C"]])).resolves.toBe("A>B>C end");
  });

  // A plain function returning an async call's promise would need the blocked main thread.
  it("main executeSync into a worker plain function that returns an async call's promise does not hang", async () => {
    const { core } = await setup();
    const started = Date.now();
    const error = thrown(() => core.executeSync("R", "relay", [], { timeout: 1500 }));
    const took = Date.now() - started;
    expect((error as { code?: string }).code).toBe("WOULD_DEADLOCK");
    expect(took).toBeLessThan(1000);
  });
});
