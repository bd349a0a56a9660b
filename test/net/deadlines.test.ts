/**
 * Deadlines and cancellation across nodes: a call's timeout travels as timeout_ms, the caller
 * gets TIMEOUT on time, and the remote plugin's CallInfo.signal is aborted; the same for a
 * caller's AbortSignal and for streams (timeout, break). Also what else CallInfo carries
 * across the network (requestId, author, authorHost, deadline).
 */
import type { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  addr,
  cleanup,
  pluginDir,
  rejection,
  rep,
  SLEEP,
  shared,
  sharedRef,
  startNode,
  waitFor,
  waitForNode,
} from "./helpers.js";

interface Seen {
  requestId: string;
  deadlineIn: number | null;
  author: string | null;
  authorHost: string | null;
}

const STORE = `__aioNetDeadlines${process.pid}`;
const store = shared(STORE, {
  seen: [] as Seen[],
  abortedAt: 0,
  finallyAt: 0,
  finallyAborted: false as boolean,
  produced: 0,
});
const S = sharedRef(STORE);

const RECORD = `
  const c = this.currentCall!;
  ${S}.seen.push({
    requestId: c.requestId,
    deadlineIn: c.deadline === undefined ? null : c.deadline - Date.now(),
    author: c.author ?? null,
    authorHost: c.authorHost ?? null,
  });`;

const WORK = {
  header: SLEEP,
  body: `
  info() { ${RECORD} return "ok"; }
  fail_with_id() { ${RECORD} throw new Error("failing on purpose"); }
  async wait_abort() {
    ${RECORD}
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 3000);
      c.signal.addEventListener("abort", () => { ${S}.abortedAt = Date.now(); clearTimeout(t); resolve(); }, { once: true });
    });
    return "finished";
  }
  async ignore_abort(ms: number) { await sleep(ms); return "late"; }
  async *stream_abort() {
    ${RECORD}
    try {
      for (let i = 0; i < 1000 && !c.signal.aborted; i++) { await sleep(10); ${S}.produced++; yield i; }
    } finally {
      ${S}.finallyAt = Date.now();
      ${S}.finallyAborted = c.signal.aborted;
    }
  }`,
  // Relay, a plugin on A, calls these too: they are open to other plugins as well.
  endpoints: [
    rep("info", [], { accessible_by_other_plugins: true }),
    rep("fail_with_id"),
    rep("wait_abort", [], { accessible_by_other_plugins: true }),
    rep("ignore_abort", [{ name: "ms", type: "int" }]),
    rep("stream_abort"),
  ],
};

// A plugin on the calling node that calls B's Work itself.
const RELAY = {
  body: `
  relay(method: string, timeout?: number) {
    return this.execute("Work", method, undefined, timeout === undefined ? { host: "B" } : { host: "B", timeout });
  }`,
  endpoints: [rep("relay", ["method", "timeout"], { remote: false })],
};

let a: PluginCore;

beforeAll(async () => {
  const dir = pluginDir({ Work: WORK, Relay: RELAY });
  // A short drain: a stream left running by a failing test must not hold up closing for long.
  const b = await startNode({
    hostname: "B",
    dir,
    plugins: ["Work"],
    general: { drain_timeout: 0.3 },
  });
  a = await startNode({
    hostname: "A",
    dir,
    plugins: ["Relay"],
    networking: { node_ips: [addr(b)] },
  });
  await waitForNode(a, "B");
});

beforeEach(() => {
  store.seen = [];
  store.abortedAt = 0;
  store.finallyAt = 0;
  store.finallyAborted = false;
  store.produced = 0;
});

afterAll(cleanup);

const onB = { host: "B" };

describe("timeouts", () => {
  it("the caller gets TIMEOUT on time and the remote plugin's signal is aborted", async () => {
    const started = Date.now();
    const error = await rejection(
      a.execute("Work", "wait_abort", undefined, { ...onB, timeout: 150 }),
    );
    const took = Date.now() - started;
    expect(error.code).toBe("TIMEOUT");
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(1000);
    await waitFor(() => store.abortedAt > 0, "the remote signal to abort", 1000);
    expect(store.abortedAt - started).toBeLessThan(1000);
    // The deadline travelled: the remote side saw about 150 ms left.
    const seen = store.seen[0] as Seen;
    expect(seen.deadlineIn).not.toBeNull();
    expect(seen.deadlineIn as number).toBeLessThanOrEqual(150);
    expect(seen.deadlineIn as number).toBeGreaterThan(50);
  });

  it("a remote plugin that ignores the signal does not hold the caller past its timeout", async () => {
    const started = Date.now();
    const error = await rejection(
      a.execute("Work", "ignore_abort", [800], { ...onB, timeout: 100 }),
    );
    expect(error.code).toBe("TIMEOUT");
    expect(Date.now() - started).toBeLessThan(600);
    // The channel still serves.
    expect(await a.execute("Work", "info", undefined, onB)).toBe("ok");
  });

  it("timeout_ms carries the time left: a 5 s timeout arrives as at most 5 s", async () => {
    expect(await a.execute("Work", "info", undefined, { ...onB, timeout: 5000 })).toBe("ok");
    const seen = store.seen[0] as Seen;
    expect(seen.deadlineIn as number).toBeGreaterThan(4000);
    expect(seen.deadlineIn as number).toBeLessThanOrEqual(5000);
  });

  it("without a timeout the remote call has no deadline", async () => {
    await a.execute("Work", "info", undefined, onB);
    expect(store.seen[0]?.deadlineIn).toBeNull();
  });

  it("a timeout set by a plugin travels too", async () => {
    const started = Date.now();
    // The plugin's own call times out; the plugin passes that on (as its failure).
    const error = await rejection(a.execute("Relay", "relay", ["wait_abort", 120]));
    expect(["TIMEOUT", "PLUGIN_ERROR"]).toContain(error.code);
    expect(error.message).toContain("120 ms");
    expect(Date.now() - started).toBeLessThan(1000);
    await waitFor(() => store.abortedAt > 0, "the remote signal to abort", 1000);
  });

  it("a stream's timeout ends it with TIMEOUT after the items so far and aborts the remote generator", async () => {
    const got: number[] = [];
    const started = Date.now();
    const error = await rejection(async () => {
      for await (const item of a.executeStream<number>("Work", "stream_abort", undefined, {
        ...onB,
        timeout: 200,
      }))
        got.push(item);
    });
    expect(error.code).toBe("TIMEOUT");
    expect(Date.now() - started).toBeLessThan(1000);
    expect(got.length).toBeGreaterThan(0);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => i));
    await waitFor(() => store.finallyAt > 0, "the remote finally", 1000);
    expect(store.finallyAborted).toBe(true);
  });
});

describe("cancellation", () => {
  it("aborting the caller's signal fails the call with ABORTED and aborts the remote signal", async () => {
    const controller = new AbortController();
    const call = a.execute("Work", "wait_abort", undefined, { ...onB, signal: controller.signal });
    await waitFor(() => store.seen.length === 1, "the call to arrive");
    controller.abort(new Error("user gave up"));
    const error = await rejection(call);
    expect(error.code).toBe("ABORTED");
    await waitFor(() => store.abortedAt > 0, "the remote signal to abort", 1000);
  });

  it("an already aborted signal fails a local call at once (for comparison)", async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await rejection(
      a.execute("Relay", "relay", ["info"], { host: "local", signal: controller.signal }),
    );
    expect(error.code).toBe("ABORTED");
  });

  it("an already aborted signal never sends a remote call", async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await rejection(
      a.execute("Work", "info", undefined, { ...onB, signal: controller.signal }),
    );
    expect(error.code).toBe("ABORTED");
    expect(store.seen).toEqual([]);
  });

  it("an already aborted signal never starts a remote stream (or closes it at once)", async () => {
    const controller = new AbortController();
    controller.abort();
    const error = await rejection(
      (async () => {
        for await (const _ of a.executeStream("Work", "stream_abort", undefined, {
          ...onB,
          signal: controller.signal,
        }));
      })(),
    );
    expect(error.code).toBe("ABORTED");
    // A round trip on the same channel: whatever was sent before it has arrived.
    await a.execute("Work", "info", undefined, onB);
    const started = store.seen.length > 1;
    if (started) await waitFor(() => store.finallyAt > 0, "the stray stream's finally", 1000);
  });

  it("breaking out of a remote stream aborts its signal and runs its finally", async () => {
    let n = 0;
    for await (const _ of a.executeStream("Work", "stream_abort", undefined, onB)) {
      if (++n === 3) break;
    }
    await waitFor(() => store.finallyAt > 0, "the remote finally", 1000);
    expect(store.finallyAborted).toBe(true);
  });

  it("aborting a stream's signal ends it with ABORTED", async () => {
    const controller = new AbortController();
    const error = await rejection(async () => {
      for await (const item of a.executeStream<number>("Work", "stream_abort", undefined, {
        ...onB,
        signal: controller.signal,
      })) {
        if (item === 2) controller.abort();
      }
    });
    expect(error.code).toBe("ABORTED");
    await waitFor(() => store.finallyAt > 0, "the remote finally", 1000);
    expect(store.finallyAborted).toBe(true);
  });
});

describe("CallInfo across nodes", () => {
  it("the remote requestId is the one the caller's error carries", async () => {
    const error = await rejection(a.execute("Work", "fail_with_id", undefined, onB));
    expect(error.code).toBe("PLUGIN_ERROR");
    expect(error.message).toContain("failing on purpose");
    expect(error.requestId).toBeTruthy();
    expect(store.seen[0]?.requestId).toBe(error.requestId);
  });

  it("a call from the application arrives with authorHost and no author", async () => {
    await a.execute("Work", "info", undefined, onB);
    expect(store.seen[0]).toMatchObject({ author: null, authorHost: "A" });
  });

  it("a call from a plugin arrives with the plugin as author and its node as authorHost", async () => {
    expect(await a.execute("Relay", "relay", ["info"])).toBe("ok");
    expect(store.seen[0]).toMatchObject({ author: "Relay", authorHost: "A" });
  });
});
