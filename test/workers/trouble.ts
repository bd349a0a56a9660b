/**
 * Shared by the containment tests: the misbehaving plugin "Trouble", a healthy main-thread and a
 * healthy worker plugin, a loop calling the healthy ones, and waiting for Trouble to come back.
 *
 * Containment of a worker plugin that misbehaves: stuck in an endless loop (stopped at a call's
 * timeout, terminated and started again), or crashing (process.exit, an uncaught exception from
 * a timer, running out of memory under resource_limits). Its calls in flight fail with a clear
 * error, it restarts with backoff, and the core and every other plugin keep serving meanwhile.
 */
import type { PluginCore } from "aio-assistant-core";
import { kindsPlugin, open, pingPlugin, pluginClass, startWith, until } from "./helpers.js";

/** A plugin that can get stuck, crash in several ways, or hang politely. */
export const TROUBLE = {
  code: pluginClass(
    "Trouble",
    `
  spin() { for (;;) {} }
  exit() { process.exit(1); }
  throwLater() { setTimeout(() => { throw new Error("boom from a timer"); }, 5); return "scheduled"; }
  grow() {
    const hoard: unknown[] = [];
    for (;;) hoard.push(new Array(10_000).fill(hoard.length));
  }
  async hang() { await new Promise(() => {}); }
  *endless() { let i = 0; for (;;) yield i++; }
  *stuckItems() { yield 1; for (;;) {} }
  ping(x = 1) { return "trouble pong " + x; }
  where() { return threadId; }`,
    `import { threadId } from "node:worker_threads";`,
  ),
  manifest: {
    endpoints: [
      open("spin"),
      open("exit"),
      open("throwLater"),
      open("grow"),
      open("hang"),
      open("endless"),
      open("stuckItems"),
      open("ping", ["x"]),
      open("where"),
    ],
  },
};

/** Trouble in a worker (32 MB heap), a healthy main-thread plugin and a healthy worker plugin. */
export function setup(logs = false, lifecycleTimeout = 6) {
  return startWith(
    {
      Trouble: {
        def: TROUBLE,
        worker: true,
        extra: "    resource_limits:\n      maxOldGenerationSizeMb: 32\n",
      },
      Healthy: { def: pingPlugin("Healthy") },
      Bystander: { def: kindsPlugin("Bystander"), worker: true },
    },
    // Short hook time limits: closing never waits long on a worker that was just stopped.
    { logs, lifecycleTimeout },
  );
}

/**
 * Calls the healthy plugins in a loop (async, and a blocking call into the healthy worker) until
 * stopped; every answer must be right.
 */
export function keepCalling(core: PluginCore) {
  let running = true;
  let ok = 0;
  const failures: unknown[] = [];
  const loop = (async () => {
    while (running) {
      try {
        const [a, b, c] = await Promise.all([
          core.execute("Healthy", "ping", [1]),
          core.execute("Bystander", "add", [1, 2]),
          core.execute("Bystander", "addAsync", [2, 2]),
        ]);
        const d = core.executeSync("Bystander", "add", [3, 3]);
        if (a === "pong 1" && b === 3 && c === 4 && d === 6) ok++;
        else failures.push([a, b, c, d]);
      } catch (error) {
        failures.push(error);
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  return {
    async stop(): Promise<{ ok: number; failures: unknown[] }> {
      running = false;
      await loop;
      return { ok, failures };
    },
  };
}

/**
 * Waits until Trouble answers again (after a restart) and returns its new thread id. Each probe
 * has a timeout of its own, so a restart in progress cannot hold the wait.
 */
export async function recovered(core: PluginCore, within = 10_000): Promise<number> {
  await until(
    "Trouble to answer again",
    async () =>
      (await core.execute("Trouble", "ping", [2], { timeout: 1000 })) === "trouble pong 2",
    within,
  );
  return (await core.execute("Trouble", "where", [], { timeout: 1000 })) as number;
}

/**
 * Runs `work` with unhandled promise rejections captured instead of reported (tests assert that
 * there are none), then restores vitest's own handlers.
 */
export async function capturingUnhandled<T>(work: (seen: unknown[]) => Promise<T>): Promise<T> {
  const seen: unknown[] = [];
  const saved = process.listeners("unhandledRejection");
  process.removeAllListeners("unhandledRejection");
  const capture = (reason: unknown) => {
    seen.push(reason);
  };
  process.on("unhandledRejection", capture);
  try {
    return await work(seen);
  } finally {
    // Let rejections of the last tick surface while still captured.
    await new Promise((resolve) => setTimeout(resolve, 20));
    process.off("unhandledRejection", capture);
    for (const listener of saved) process.on("unhandledRejection", listener as never);
  }
}
