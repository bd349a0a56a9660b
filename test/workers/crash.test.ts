/**
 * A worker plugin that crashes (process.exit, an uncaught exception from a timer, out of memory
 * under resource_limits): its calls in flight fail with PLUGIN_ERROR naming the worker, it
 * restarts with backoff, and the core and the other plugins keep serving throughout.
 *
 * Each scenario runs once (beforeAll) and records what happened; the tests below assert on the
 * record, so one scenario serves several tests.
 */
import type { PluginCore, RequestError } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanup, logMessages, rejection, thrown } from "./helpers.js";
import { capturingUnhandled, keepCalling, recovered, setup } from "./trouble.js";

afterAll(cleanup);

interface Crash {
  label: string;
  method: string;
  /** What the errors and the log say. */
  says: RegExp;
}

const CRASHES: Crash[] = [
  {
    label: "process.exit(1)",
    method: "exit",
    says: /worker of Trouble exited with code 1/,
  },
  {
    label: "an uncaught exception from a timer",
    method: "throwLater",
    says: /worker of Trouble crashed: boom from a timer/,
  },
  {
    label: "running out of memory (resource_limits maxOldGenerationSizeMb: 32)",
    method: "grow",
    says: /worker of Trouble crashed: .*memory/i,
  },
];

interface CrashRecord {
  before: number;
  own: unknown;
  inFlight: RequestError[];
  rightAfter: unknown;
  after: number;
  others: { ok: number; failures: unknown[] };
  state: string;
  messages: string[];
}

/** Crashes Trouble the given way while calls are in flight and the other plugins are busy. */
async function crashScenario(core: PluginCore, crash: Crash, seen: CrashRecord): Promise<void> {
  seen.before = (await core.execute("Trouble", "where")) as number;
  const others = keepCalling(core);
  const hanging = rejection(core.execute("Trouble", "hang"));
  const streaming = rejection(async () => {
    for await (const _ of core.executeStream("Trouble", "endless")) {
      /* until it fails */
    }
  });
  seen.own = await core.execute("Trouble", crash.method).catch((error: Error) => error);
  seen.inFlight = [await hanging, await streaming];
  // The crash has been handled: a call made now should wait for the restart.
  const rightAfter = core
    .execute("Trouble", "ping", [4], { timeout: 4000 })
    .catch((error: Error) => error);
  seen.after = await recovered(core);
  seen.rightAfter = await rightAfter;
  seen.state = core.getPluginInfo("Trouble")?.state ?? "";
  seen.others = await others.stop();
  await core.close();
  seen.messages = logMessages(core);
}

const records = new Map<Crash, CrashRecord>(
  CRASHES.map((crash) => [
    crash,
    {
      before: 0,
      own: undefined,
      inFlight: [],
      rightAfter: undefined,
      after: 0,
      others: { ok: 0, failures: [] },
      state: "",
      messages: [],
    },
  ]),
);

/** Backoff: two crashes in a row; how long a call made right after each waits. */
const backoff = { waits: [] as number[], codes: [] as string[] };

async function backoffScenario(core: PluginCore): Promise<void> {
  for (let round = 0; round < 2; round++) {
    backoff.codes.push((await rejection(core.execute("Trouble", "exit"))).code);
    const since = Date.now();
    // A call made now waits for the restart instead of failing.
    const answer = await core.execute("Trouble", "ping", [round], { timeout: 5000 });
    backoff.codes.push(String(answer));
    backoff.waits.push(Date.now() - since);
  }
  await core.close();
}

/** A crash while the main thread is blocked in executeSync on the worker. */
const blocked = {
  error: undefined as RequestError | undefined,
  took: 0,
  recovered: false,
  healthy: undefined as unknown,
};

async function blockedScenario(): Promise<void> {
  await capturingUnhandled(async () => {
    const { core } = await setup();
    const started = Date.now();
    blocked.error = thrown(() => core.executeSync("Trouble", "exit", [], { timeout: 1000 }));
    blocked.took = Date.now() - started;
    blocked.recovered = (await recovered(core)) > 0;
    blocked.healthy = await core.execute("Healthy", "ping", [9]);
    await core.close();
  });
}

beforeAll(async () => {
  // Independent scenarios (a core each) run side by side, once their cores have started one
  // after the other (starting a worker costs CPU: all at once, they would crowd each other)...
  const cores: PluginCore[] = [];
  for (let i = 0; i <= CRASHES.length; i++) cores.push((await setup(true)).core);
  await Promise.all([
    ...CRASHES.map((crash, i) =>
      crashScenario(cores[i] as PluginCore, crash, records.get(crash) as CrashRecord),
    ),
    backoffScenario(cores[CRASHES.length] as PluginCore),
  ]);
  // ...but not this one: it blocks the main thread on purpose.
  await blockedScenario();
}, 50_000);

for (const crash of CRASHES) {
  describe(`a worker that crashes: ${crash.label}`, () => {
    const seen = records.get(crash) as CrashRecord;

    it("its calls in flight fail with PLUGIN_ERROR naming the worker and what happened", () => {
      const errors = [...seen.inFlight];
      // throwLater answers, then throws from a timer: its own answer may or may not have left
      // the worker before the crash (if not, it was a call in flight like the others).
      if (crash.method !== "throwLater" || seen.own !== "scheduled") {
        errors.push(seen.own as RequestError);
      }
      for (const error of errors) {
        expect(error.code).toBe("PLUGIN_ERROR");
        expect(error.message).toMatch(crash.says);
      }
    });

    it("it restarts in a new thread and answers again", () => {
      expect(seen.after).toBeGreaterThan(0);
      expect(seen.after).not.toBe(seen.before);
      expect(seen.state).toBe("enabled");
    });

    it("the core and the other plugins (main-thread and worker) keep serving throughout", () => {
      expect(seen.others.failures).toEqual([]);
      expect(seen.others.ok).toBeGreaterThan(0);
    });

    it("the crash and the restart are logged", () => {
      expect(
        seen.messages.some(
          (m) => crash.says.test(m) && /its calls in flight fail, and it restarts/.test(m),
        ),
      ).toBe(true);
      expect(seen.messages.some((m) => /Trouble restarted: its worker/.test(m))).toBe(true);
    });

    // "error" and then "exit"; both must count as one crash.
    it("one crash is handled once: one crash line, one restart", () => {
      expect(
        seen.messages.filter((m) => /its calls in flight fail, and it restarts/.test(m)),
      ).toHaveLength(1);
      expect(seen.messages.filter((m) => /failed to restart/.test(m))).toHaveLength(0);
      expect(seen.messages.filter((m) => /Trouble restarted: its worker/.test(m))).toHaveLength(1);
    });

    it("a call made right after the crash waits for the restart and is answered", () => {
      expect(seen.rightAfter).toBe("trouble pong 4");
    });
  });
}

describe("restarts with backoff", () => {
  it("a call made after a crash waits for the restart; a second crash in a row waits longer", () => {
    expect(backoff.codes).toEqual([
      "PLUGIN_ERROR",
      "trouble pong 0",
      "PLUGIN_ERROR",
      "trouble pong 1",
    ]);
    expect(backoff.waits[0]).toBeGreaterThanOrEqual(180);
    expect(backoff.waits[1]).toBeGreaterThanOrEqual(380);
  });
});

describe("a crash while a main-thread executeSync waits on the worker", () => {
  const seen = blocked;

  it("the call ends by its timeout at the latest, and the plugin recovers", () => {
    expect(seen.error).toBeInstanceOf(Error);
    expect(seen.took).toBeLessThan(4000);
    expect(seen.recovered).toBe(true);
    expect(seen.healthy).toBe("pong 9");
  });

  it("the call fails promptly with PLUGIN_ERROR naming the worker", () => {
    expect(seen.error?.code).toBe("PLUGIN_ERROR");
    expect(seen.error?.message).toMatch(/worker of Trouble exited/);
    expect(seen.took).toBeLessThan(500);
  });
});
