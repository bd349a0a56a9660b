/**
 * A worker plugin stuck in an endless loop is stopped at a call's timeout: the caller gets
 * TIMEOUT, the worker is terminated and started again, its other calls in flight fail, it
 * answers again afterwards, and the core and the other plugins keep serving throughout.
 *
 * Each scenario runs once (beforeAll) and records what happened; the tests below assert on the
 * record, so one scenario serves several tests.
 */
import type { PluginCore, RequestError } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanup, logMessages, rejection, thrown } from "./helpers.js";
import { capturingUnhandled, keepCalling, recovered, setup } from "./trouble.js";

afterAll(cleanup);

/** What scenario A saw: execute, executeSync and a stream into a worker stuck in a loop. */
const seen = {
  before: 0,
  spin: undefined as RequestError | undefined,
  spinMs: 0,
  inFlight: [] as RequestError[],
  duringStop: undefined as unknown,
  after: 0,
  others: { ok: 0, failures: [] as unknown[] },
  sync: undefined as RequestError | undefined,
  syncMs: 0,
  afterSync: 0,
  stream: undefined as RequestError | undefined,
  streamItems: [] as unknown[],
  afterStream: 0,
  messages: [] as string[],
};

async function stuckScenario(core: PluginCore): Promise<void> {
  seen.before = (await core.execute("Trouble", "where")) as number;
  const others = keepCalling(core);

  // 1. execute: a call that times out on the stuck worker, and others in flight with it.
  const hanging = rejection(core.execute("Trouble", "hang"));
  const started = Date.now();
  const spinning = rejection(core.execute("Trouble", "spin", [], { timeout: 300 }));
  const queued = rejection(core.execute("Trouble", "ping", [3])); // behind spin in the queue
  const streaming = rejection(async () => {
    for await (const _ of core.executeStream("Trouble", "endless")) {
      /* until it fails */
    }
  });
  seen.spin = await spinning;
  seen.spinMs = Date.now() - started;
  seen.inFlight = [await hanging, await queued, await streaming];
  // The calls in flight were just failed by the stuck check, which now stops the worker: a
  // call made at this moment should wait for the restart.
  const duringStop = core
    .execute("Trouble", "ping", [5], { timeout: 3000 })
    .catch((error: Error) => error);
  seen.after = await recovered(core);
  seen.duringStop = await duringStop;
  seen.others = await others.stop();

  // 2. executeSync from the main thread into the stuck worker.
  const syncStarted = Date.now();
  seen.sync = thrown(() => core.executeSync("Trouble", "spin", [], { timeout: 300 }));
  seen.syncMs = Date.now() - syncStarted;
  seen.afterSync = await recovered(core);

  // 3. A generator that gets stuck after its first item.
  seen.stream = await rejection(async () => {
    for await (const item of core.executeStream("Trouble", "stuckItems", [], { timeout: 300 })) {
      seen.streamItems.push(item);
    }
  });
  seen.afterStream = await recovered(core);

  await core.close();
  seen.messages = logMessages(core);
}

/** What scenario B saw: a worker dies under a blocking call, then later gets stuck. */
const afterDeath = {
  unhandled: [] as unknown[],
  spin: undefined as RequestError | undefined,
  recovered: undefined as unknown,
};

async function afterDeathScenario(core: PluginCore): Promise<void> {
  await capturingUnhandled(async (unhandled) => {
    thrown(() => core.executeSync("Trouble", "exit", [], { timeout: 400 }));
    await recovered(core);
    const before = (await core.execute("Trouble", "where")) as number;
    afterDeath.spin = await rejection(core.execute("Trouble", "spin", [], { timeout: 300 }));
    afterDeath.recovered = await recovered(core, 3500).then(
      (after) => after !== before,
      (error: Error) => error.message,
    );
    await core.close();
    afterDeath.unhandled = unhandled;
  });
}

beforeAll(async () => {
  // The two scenarios are independent (a core each): once their cores have started, one after
  // the other (starting workers costs CPU), they run side by side.
  const a = (await setup(true)).core;
  // Short hook limits: if its worker is never restarted, close() waits for its onDisable.
  const b = (await setup(false, 4)).core;
  await Promise.all([stuckScenario(a), afterDeathScenario(b)]);
}, 45_000);

describe("a worker stuck in an endless loop", () => {
  it("the caller gets TIMEOUT at its deadline", () => {
    expect(seen.spin?.code).toBe("TIMEOUT");
    expect(seen.spinMs).toBeGreaterThanOrEqual(280);
    expect(seen.spinMs).toBeLessThan(2500);
  });

  it("the other calls in flight on it fail, with a message about the time-out", () => {
    expect(seen.inFlight).toHaveLength(3);
    for (const error of seen.inFlight) expect(error.message).toMatch(/did not finish within/);
  });

  it("the other calls in flight fail with code TIMEOUT", () => {
    expect(seen.inFlight.map((error) => error.code)).toEqual(["TIMEOUT", "TIMEOUT", "TIMEOUT"]);
  });

  it("the worker is terminated and started again (a new thread), and answers again", () => {
    expect(seen.after).toBeGreaterThan(0);
    expect(seen.after).not.toBe(seen.before);
  });

  it("the core and the other plugins (main-thread and worker) keep serving throughout", () => {
    expect(seen.others.failures).toEqual([]);
    expect(seen.others.ok).toBeGreaterThan(0);
  });

  it("the stop and the restart are logged", () => {
    expect(seen.messages.some((m) => /Trouble is stuck past a call's deadline/.test(m))).toBe(true);
    expect(seen.messages.some((m) => /Trouble restarted: its worker was stuck/.test(m))).toBe(true);
  });

  it("a call made while the stuck worker is being stopped is answered after the restart", () => {
    expect(seen.duringStop).toBe("trouble pong 5");
  });

  it("a blocking executeSync from the main thread into the stuck worker ends at its timeout; the worker restarts", () => {
    expect(seen.sync).toBeInstanceOf(Error);
    expect(seen.sync?.message).toMatch(/did not finish within/);
    expect(seen.syncMs).toBeGreaterThanOrEqual(250);
    expect(seen.syncMs).toBeLessThan(2500);
    expect(seen.afterSync).not.toBe(seen.after);
  });

  it("that blocking call's error has code TIMEOUT", () => {
    expect(seen.sync?.code).toBe("TIMEOUT");
  });

  it("a worker stuck inside a stream's generator is stopped at the consumer's timeout too", () => {
    expect(seen.stream?.code).toBe("TIMEOUT");
    expect(seen.afterStream).not.toBe(seen.afterSync);
  });
});

describe("stuck detection after a worker died under a blocking call", () => {
  it("the later call into the endless loop still gets TIMEOUT", () => {
    expect(afterDeath.spin?.code).toBe("TIMEOUT");
  });

  it("the later endless loop is detected and the worker restarted", () => {
    expect(afterDeath.recovered).toBe(true);
  });

  it("no promise rejection is left unhandled", () => {
    expect(afterDeath.unhandled).toEqual([]);
  });
});
