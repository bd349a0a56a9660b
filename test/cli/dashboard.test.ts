/**
 * `aio dashboard` in a real browser (playwright-core driving the system's chromium): a node "pi"
 * started with `aio run`, serving Home, and the dashboard of a node "laptop" that knows it
 * (`--config`: laptop runs in the dashboard's process, the secret in its environment). What the
 * page shows, a call and a stream through
 * the form, Stop ending the stream at its source, live figures, publish and watch, operator
 * actions, the log, a node going down; that its API answers only its own page (Host, Origin,
 * token), and that the secret appears in no answer and no page.
 *
 * With AIO_SCREENSHOTS=1 it also saves the screenshots docs/dashboard.md shows.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../support.js";
import {
  CLI,
  cliEnv,
  project,
  type RunningNode,
  removeTempDirs,
  startNode,
  stopNodes,
} from "./helpers.js";

/** What the page functions below use of the browser's DOM (tsconfig has Node's types only). */
interface PageElement {
  textContent: string | null;
  dataset: Record<string, string | undefined>;
}
declare const document: {
  getElementById(id: string): PageElement | null;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
};

const SECRET = "dashboard-test-0f6c1e9a7b2d4c8e9f0a1b2c3d4e5f60";
const SCREENSHOTS = process.env.AIO_SCREENSHOTS === "1";
const IMAGES = join(import.meta.dirname, "../../docs/images");

/** The system's chromium (Debian: `apt-get install chromium`), or AIO_CHROMIUM. */
function chromiumPath(): string {
  if (process.env.AIO_CHROMIUM) return process.env.AIO_CHROMIUM;
  for (const name of ["chromium", "chromium-browser", "google-chrome"]) {
    try {
      return execFileSync("which", [name], { encoding: "utf8" }).trim();
    } catch {}
  }
  throw new Error(
    "the dashboard tests drive a real browser: apt-get install chromium (or set AIO_CHROMIUM to a Chrome or Chromium binary)",
  );
}

const HOME = {
  "plugins/Home/plugin.ts": `import { writeFileSync } from "node:fs";
import { Plugin } from "aio-assistant-core";
export class Home extends Plugin {
  set_light(room: string, on: boolean, level = 100) { return { room, on, level, node: "pi" }; }
  async *ticks() {
    let n = 0;
    try {
      for (;;) {
        yield ++n;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      writeFileSync("ticks-stopped", String(n));
    }
  }
  temperature(celsius: number) { this.logger.info("temperature " + celsius); }
}
`,
  "plugins/Home/plugin_config.yml": `description: The house
version: 1.2.0
remote: true
endpoints:
  - internal_name: set_light
    description: Turns a room's light on or off
    tags: [mcp, lights]
    remote: true
    arguments:
      - name: room
        type: str
        required: true
      - name: on
        type: bool
        required: true
      - name: level
        type: int
        default: 100
  - internal_name: ticks
    description: Counts until stopped
    remote: true
  - internal_name: temperature
    topic: sensor/>
    remote: true
    arguments:
      - name: celsius
        type: float
`,
};

const NET =
  "  enabled: true\n  port: 0\n  bind: 127.0.0.1\n  heartbeat_interval: 1\n  liveness_timeout: 3\n";

let pi: RunningNode;
let piDir: string;
let dashboard: ChildProcess;
let url = "";
let origin = "";
let browser: Browser;
let page: Page;
/** Every answer the browser got, as text: none may hold the secret. */
const seen: string[] = [];

beforeAll(async () => {
  const executablePath = chromiumPath();
  piDir = project(HOME, { plugins: ["Home"], general: "  hostname: pi\n", networking: NET });
  pi = await startNode(piDir, ["config.yml"], { AIO_SECRET: SECRET });
  const laptopDir = project(
    {},
    {
      plugins: ["Calc"],
      general: "  hostname: laptop\n",
      networking: `${NET}  node_ips: ["127.0.0.1:${pi.port}"]\n`,
    },
  );
  dashboard = spawn(process.execPath, [CLI, "dashboard", "--config", "config.yml"], {
    cwd: laptopDir,
    env: cliEnv({ AIO_SECRET: SECRET }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let printed = "";
  dashboard.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    printed += chunk;
  });
  url = await waitFor(
    () => /(http:\/\/127\.0\.0\.1:\d+\/#token=[\w-]+)/.exec(printed)?.[1],
    "the dashboard's URL",
    15_000,
  );
  origin = new URL(url).origin;
  browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1400, height: 1400 } });
  page.on("response", async (response) => {
    const body = await response.text().catch(() => "");
    seen.push(body);
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  dashboard?.kill("SIGKILL");
  await stopNodes();
  removeTempDirs();
});

async function shot(name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  // A picture for the docs, not a check: the charts get a few more points first.
  await page.waitForTimeout(1500);
  mkdirSync(IMAGES, { recursive: true });
  await page.screenshot({ path: join(IMAGES, `${name}.png`), fullPage: true });
}

/** Chooses the endpoint `key` (host/Plugin.endpoint) in the call form. */
async function choose(key: string): Promise<void> {
  await page.waitForSelector(`#call-endpoint option[value="${key}"]`, { state: "attached" });
  await page.selectOption("#call-endpoint", key);
}

/** A raw request to the dashboard server with the given headers. */
function raw(path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = new URL(path, origin);
    request(target, { headers }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    })
      .on("error", reject)
      .end();
  });
}

describe("aio dashboard", () => {
  it("shows nodes, plugins (of every node) and endpoints", async () => {
    await page.goto(url);
    await page.waitForSelector('#nodes tr[data-node="pi"] td.state.up');
    // The token left the address bar once read.
    expect(page.url()).not.toContain("token");
    await page.waitForSelector('#plugins tr[data-plugin="Calc"]');
    expect(await page.textContent('#plugins tr[data-plugin="Calc"] td.state')).toBe("enabled");
    // Another node's plugins, as that node lists them (asked of it every few seconds).
    await page.waitForSelector('#plugins tr[data-plugin="pi/Home"] td.state.up', {
      timeout: 10_000,
    });
    expect(await page.textContent('#plugins tr[data-plugin="pi/Home"]')).toContain("1.2.0");
    const endpoints = await page.$$eval("#endpoints tr", (rows) =>
      rows.map((row) => (row as unknown as PageElement).dataset.endpoint),
    );
    expect(endpoints).toEqual(expect.arrayContaining(["pi/Home.set_light", "pi/Home.ticks"]));
    const row = await page.textContent('#endpoints tr[data-endpoint="pi/Home.set_light"]');
    expect(row).toContain("room: str, on: bool, level: int?");
    expect(row).toContain("lights");
    expect(await page.textContent('#endpoints tr[data-endpoint="pi/Home.temperature"]')).toContain(
      "sensor/>",
    );
    expect(await page.textContent('#nodes tr[data-node="pi"]')).toContain("channel");
  });

  it("calls an endpoint through the form, with inputs typed from its manifest", async () => {
    await choose("pi/Home.set_light");
    expect(await page.getAttribute('[name="arg-level"]', "type")).toBe("number");
    expect(await page.inputValue('[name="arg-level"]')).toBe("100");
    await page.fill('[name="arg-room"]', "kitchen");
    await page.check('[name="arg-on"]');
    await page.click("#call-button");
    await page.waitForFunction(() =>
      document.getElementById("call-output")?.textContent?.includes("kitchen"),
    );
    expect(JSON.parse((await page.textContent("#call-output")) ?? "")).toEqual({
      room: "kitchen",
      on: true,
      level: 100,
      node: "pi",
    });
    // A wrong input is the call's error, code and message.
    await page.fill('[name="arg-level"]', "2.5");
    await page.click("#call-button");
    await page.waitForFunction(() =>
      document.getElementById("call-output")?.textContent?.includes("INVALID_ARGUMENTS"),
    );
  });

  it("streams through the form; Stop ends the stream at its source", async () => {
    await choose("pi/Home.ticks");
    await page.click("#stream-button");
    await page.waitForFunction(() => document.querySelectorAll("#stream-items li").length >= 3);
    await page.click("#stop-button");
    await page.waitForFunction(() =>
      document.getElementById("call-output")?.textContent?.startsWith("stopped"),
    );
    await waitFor(
      () => existsSync(join(piDir, "ticks-stopped")),
      "the generator on pi to end",
      10_000,
    );
  });

  it("updates the call figures live, without a reload", async () => {
    const row = '#calls tr[data-figures="Home.set_light/made"]';
    await page.waitForSelector(row);
    const before = Number(await page.textContent(`${row} td:nth-child(6)`));
    await choose("pi/Home.set_light");
    await page.fill('[name="arg-room"]', "hall");
    await page.fill('[name="arg-level"]', "50");
    for (let i = 0; i < 3; i++) {
      await page.click("#call-button");
      await page.waitForFunction(() =>
        document.getElementById("call-output")?.textContent?.includes("hall"),
      );
      await page.evaluate(() => {
        const output = document.getElementById("call-output");
        if (output) output.textContent = "";
      });
    }
    await page.waitForFunction(
      ([selector, total]) =>
        Number(document.querySelector(`${selector} td:nth-child(6)`)?.textContent) >=
        (total as number) + 3,
      [row, before] as const,
    );
    expect(
      await page.locator("#rate-chart canvas, #p99-chart canvas").count(),
    ).toBeGreaterThanOrEqual(2);
    await shot("dashboard");
  });

  it("publishes to a topic and watches it", async () => {
    await page.fill("#watch-pattern", "sensor/>");
    await page.click("#watch-button");
    // The watch is in place once the node has it: publish until one shows.
    await waitFor(
      async () => {
        await page.fill("#publish-topic", "sensor/kitchen/temperature");
        await page.fill("#publish-args", '{"celsius": 21.5}');
        await page.click("#publish-button");
        return (await page.locator("#watch-items li").count()) > 0;
      },
      "the published message in the watch list",
      10_000,
    );
    expect(await page.textContent("#watch-items li")).toContain("sensor/kitchen/temperature");
    // The watch can show the message before the page has the answer to its last publish.
    await page.waitForFunction(() =>
      /\d+ subscriber\(s\) took it/.test(
        document.querySelector("#publish-result")?.textContent ?? "",
      ),
    );
    await page.click("#watch-stop");
  });

  it("tails the node's log", async () => {
    await page.waitForFunction(() =>
      Array.from(document.querySelectorAll("#log li")).some((li) =>
        li.textContent?.includes("Ready in"),
      ),
    );
  });

  it("disables and enables a plugin, as the console does", async () => {
    await page.click('#plugins tr[data-plugin="Calc"] button[data-action="disable"]');
    await page.waitForFunction(
      () =>
        document.querySelector('#plugins tr[data-plugin="Calc"] td.state')?.textContent ===
        "disabled",
    );
    await page.click('#plugins tr[data-plugin="Calc"] button[data-action="enable"]');
    await page.waitForFunction(
      () =>
        document.querySelector('#plugins tr[data-plugin="Calc"] td.state')?.textContent ===
        "enabled",
    );
  });

  it("answers only its own page: the token, the Host and the Origin are checked", async () => {
    expect(await raw("/api/state", { host: new URL(origin).host })).toBe(401);
    const token = new URL(url).hash.replace("#token=", "");
    const own = { host: new URL(origin).host, "x-dashboard-token": token };
    expect(await raw("/api/state", own)).toBe(200);
    expect(await raw("/api/state", { ...own, host: `evil.example:${new URL(origin).port}` })).toBe(
      403,
    );
    expect(await raw("/api/state", { ...own, origin: "https://evil.example" })).toBe(403);
  });

  it("shows a node going down", async () => {
    await pi.stop("SIGKILL");
    await page.waitForSelector('#nodes tr[data-node="pi"] td.state.down', { timeout: 15_000 });
    await shot("dashboard-node-down");
  }, 30_000);

  it("never shows the secret, in any answer or on the page", async () => {
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.filter((text) => text.includes(SECRET))).toEqual([]);
    expect(await page.content()).not.toContain(SECRET);
  });
});
