/**
 * `bind` names are resolved, and every address they resolve to is checked: a node without a
 * secret listens on loopback only, whatever the name looks like. The attack: a name such as
 * `127.lan` that resolves to a LAN address, on a host whose hosts file says so (a network
 * namespace with a hosts file of its own, /etc/netns/<name>/hosts, which `ip netns exec` puts in
 * place of /etc/hosts).
 *
 * The namespace part needs root and iproute2; it is skipped where namespaces cannot be made.
 */
import { execFile } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PluginCore } from "aio-assistant-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNamespaces, Network } from "../netns-support.js";

const DIST = fileURLToPath(new URL("../../dist/index.js", import.meta.url));

/** Starts a node with `networking` in the namespace; resolves with how start() ended. */
function startIn(
  netns: string,
  networking: object,
): Promise<{ ok?: true; code?: string; message?: string }> {
  const script = `
    const { PluginCore } = await import(${JSON.stringify(DIST)});
    const core = new PluginCore({ general: { hostname: "n", log_dir: "", console_log_level: "CRITICAL" },
      networking: { enabled: true, port: 0, discover_nodes: false, ...${JSON.stringify(networking)} } });
    try { await core.start(); console.log(JSON.stringify({ ok: true })); await core.close(); }
    catch (error) { console.log(JSON.stringify({ code: error.code, message: error.message })); }`;
  return new Promise((resolve, reject) => {
    execFile(
      "ip",
      ["netns", "exec", netns, process.execPath, "--input-type=module", "-e", script],
      { timeout: 20_000 },
      (error, stdout) => {
        const line = stdout.trim().split("\n").pop();
        if (!line) reject(error ?? new Error("no output"));
        else resolve(JSON.parse(line));
      },
    );
  });
}

describe("bind names", () => {
  it("a name that does not resolve is a ConfigError at start, naming it", async () => {
    const core = new PluginCore({
      general: { hostname: "x", log_dir: "", console_log_level: "CRITICAL" },
      networking: { enabled: true, port: 0, bind: "no-such-host.invalid" },
    });
    await expect(core.start()).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: expect.stringMatching(/"no-such-host\.invalid" does not resolve/),
    });
    await core.close();
  });
});

const available = canUseNamespaces();
const network = new Network(1, 3);
const host = network.hosts[0] as (typeof network.hosts)[number];
const hostsDir = `/etc/netns/${host.netns}`;

describe.skipIf(!available)("a bind name that looks like loopback but is not", () => {
  beforeAll(() => {
    network.build();
    mkdirSync(hostsDir, { recursive: true });
    writeFileSync(
      `${hostsDir}/hosts`,
      `127.0.0.1 localhost\n${host.address} 127.lan\n127.0.0.1 looped\n`,
    );
  });
  afterAll(() => {
    network.remove();
    rmSync(hostsDir, { recursive: true, force: true });
  });

  it("refuses to listen without a secret, naming the address it resolves to", async () => {
    const started = await startIn(host.netns, { bind: "127.lan" });
    expect(started.code).toBe("CONFIG_INVALID");
    expect(started.message).toContain(`127.lan (${host.address})`);
    expect(started.message).toMatch(/without a secret/);
  });

  it("listens with a secret, or on a name that does resolve to loopback", async () => {
    expect(
      await startIn(host.netns, { bind: "127.lan", secret: `s-${"0123456789abcdef".repeat(2)}` }),
    ).toEqual({ ok: true });
    expect(await startIn(host.netns, { bind: "looped" })).toEqual({ ok: true });
  });
});
