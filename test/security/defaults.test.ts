/**
 * Safe defaults: without a secret a node listens on loopback only; a non-loopback bind without
 * a secret is a ConfigError at construction unless allow_insecure, which starts with a logged
 * warning; with a secret (config or AIO_SECRET) the node listens on every interface and signs.
 * And a web page cannot drive a loopback node: no CORS, JSON only.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { networkInterfaces } from "node:os";
import { ConfigError, PluginCore } from "aio-assistant-core";
import { afterAll, describe, expect, it } from "vitest";
import {
  API,
  cleanup,
  closeNode,
  instanceOf,
  nodeConfig,
  pluginDir,
  post,
  rawRequest,
  readLog,
  shared,
  sharedRef,
  signedRequest,
  startNode,
  tempDir,
} from "./helpers.js";

afterAll(cleanup);

/** This machine's non-loopback IPv4 addresses. */
const lanAddresses = Object.values(networkInterfaces())
  .flat()
  .filter((i) => i && i.family === "IPv4" && !i.internal)
  .map((i) => i?.address as string);

/** Whether a TCP connection to address:port is accepted. */
function reachable(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port, timeout: 1000 });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Whether `ss` (iproute2) is there to list listening sockets. */
const HAS_SS = (() => {
  try {
    execFileSync("ss", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

/**
 * Local addresses listening on `port` (TCP or UDP), from `ss`; without `ss`, what the test
 * expects (the reachability checks still run).
 */
function listening(port: number, proto: "t" | "u", expected: string[]): string[] {
  if (!HAS_SS) return expected;
  const out = execFileSync("ss", [`-ln${proto}H`], { encoding: "utf8" });
  return out
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[3] ?? "")
    .filter((local) => local.endsWith(`:${port}`))
    .map((local) => local.slice(0, local.lastIndexOf(":")));
}

/** No mDNS from these tests' nodes, even on a LAN address. */
const QUIET = { direct_discoverable: false, auto_discoverable: false, discover_nodes: false };

describe("without a secret", () => {
  it("the node listens on 127.0.0.1 only (TCP and UDP)", async () => {
    const core = await startNode({ hostname: "quiet", networking: { bind: "", secret: "" } });
    const port = core.port as number;
    expect(await reachable("127.0.0.1", port)).toBe(true);
    expect(listening(port, "t", ["127.0.0.1"])).toEqual(["127.0.0.1"]);
    expect(listening(port, "u", ["127.0.0.1"])).toEqual(["127.0.0.1"]);
    for (const address of lanAddresses) expect(await reachable(address, port)).toBe(false);
    await closeNode(core);
  });

  it.each(["0.0.0.0", "::", ...lanAddresses])(
    'bind "%s" is a ConfigError at construction naming secret and allow_insecure',
    (bind) => {
      let error: unknown;
      try {
        new PluginCore(nodeConfig({ hostname: "x", networking: { bind, secret: "" } }));
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/secret/);
      expect((error as Error).message).toMatch(/allow_insecure/);
    },
  );

  it.each(["127.0.0.1", "localhost", "::1"])('bind "%s" is fine', (bind) => {
    expect(
      () => new PluginCore(nodeConfig({ hostname: "x", networking: { bind, secret: "" } })),
    ).not.toThrow();
  });

  it("allow_insecure: true starts on 0.0.0.0 and logs a warning", async () => {
    const logDir = tempDir();
    const core = await startNode({
      hostname: "insecure",
      logDir,
      networking: { bind: "0.0.0.0", secret: "", allow_insecure: true, ...QUIET },
    });
    const port = core.port as number;
    expect(listening(port, "t", ["0.0.0.0"])).toEqual(["0.0.0.0"]);
    for (const address of lanAddresses) expect(await reachable(address, port)).toBe(true);
    await closeNode(core);
    const warning = readLog(logDir)
      .split("\n")
      .find((line) => line.includes("INSECURE"));
    expect(warning).toBeDefined();
    expect(warning).toMatch(/without a secret/);
    expect(JSON.parse(warning as string).level).toBe(40); // pino's warn
  });
});

describe("with a secret", () => {
  it("the default bind is every interface, and every request must be signed", async () => {
    const secret = randomBytes(32).toString("hex");
    const core = await startNode({
      hostname: "open",
      networking: { bind: "", secret, ...QUIET },
    });
    const port = core.port as number;
    expect(listening(port, "t", ["0.0.0.0"])).toEqual(["0.0.0.0"]);
    for (const address of lanAddresses) {
      expect((await rawRequest(port, { address, path: "/has_plugin?name=x" })).status).toBe(401);
      const signed = await signedRequest(port, secret, { address, path: "/ping" });
      expect(signed.json).toEqual({
        status: "ok",
        hostname: "open",
        instance: await instanceOf(port, address),
        time: expect.any(Number),
      });
    }
    await closeNode(core);
  });

  it("the secret can come from AIO_SECRET", async () => {
    const secret = randomBytes(32).toString("hex");
    const saved = process.env.AIO_SECRET;
    process.env.AIO_SECRET = secret;
    let core: PluginCore;
    try {
      core = await startNode({ hostname: "env", networking: { bind: "", secret: "", ...QUIET } });
    } finally {
      if (saved === undefined) delete process.env.AIO_SECRET;
      else process.env.AIO_SECRET = saved;
    }
    const port = core.port as number;
    expect(listening(port, "t", ["0.0.0.0"])).toEqual(["0.0.0.0"]);
    expect((await rawRequest(port, { path: "/has_plugin?name=x" })).status).toBe(401);
    expect((await signedRequest(port, secret, { path: "/ping" })).json.hostname).toBe("env");
    await closeNode(core);
  });
});

describe("a web page cannot drive a loopback node without a secret", () => {
  const STORE = `__aioSecDefaults${process.pid}`;
  const ran = shared(STORE, { n: 0 });

  it("a cross-site form post (text/plain) is refused, and no CORS header lets a page read", async () => {
    const dir = pluginDir({
      Api: {
        ...API,
        body: `${API.body}\n  touch() { ${sharedRef(STORE)}.n++; return "touched"; }`,
        endpoints: [...API.endpoints, { internal_name: "touch", remote: true }],
      },
    });
    const core = await startNode({ hostname: "local", dir, plugins: ["Api"] });
    const port = core.port as number;
    const origin = { origin: "http://evil.example" };
    for (const type of [
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
    ]) {
      const answer = await post(port, undefined, "/execute", '{"plugin":"Api","method":"touch"}', {
        headers: { "content-type": type, ...origin },
      });
      expect(answer.status).toBe(415);
      expect(answer.json.error.code).toBe("BAD_REQUEST");
      // Nor the operator's route: a page cannot disable or unload the node's plugins.
      const admin = await post(port, undefined, "/admin", '{"action":"purge"}', {
        headers: { "content-type": type, ...origin },
      });
      expect(admin.status).toBe(415);
      // A bodiless post (what a page can send without a preflight) does nothing either.
      const bare = await rawRequest(port, { method: "POST", path: "/admin", headers: origin });
      expect(bare.status).toBe(400);
    }
    expect(core.listPlugins().map((p) => [p.name, p.state])).toEqual([["Api", "enabled"]]);
    expect(ran.n).toBe(0);
    const preflight = await rawRequest(port, {
      method: "OPTIONS",
      path: "/execute",
      headers: {
        ...origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      },
    });
    expect(preflight.status).toBeGreaterThanOrEqual(400);
    const ping = await rawRequest(port, { path: "/ping", headers: origin });
    for (const answer of [preflight, ping]) {
      expect(Object.keys(answer.headers).filter((h) => h.startsWith("access-control-"))).toEqual(
        [],
      );
    }
    await closeNode(core);
  });
});
