/**
 * `aio publish` and `aio endpoints [--tag]`: against a running node (`--node`, signed with
 * AIO_SECRET) and in-process (`--config`).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { aio, project, type RunningNode, removeTempDirs, startNode, stopNodes } from "./helpers.js";

const SECRET = "cli-topics-secret-0123456789";
const NETWORK = `  enabled: true\n  port: 0\n  bind: 127.0.0.1\n`;

const BOARD = {
  "plugins/Board/plugin.ts": `import { Plugin } from "aio-assistant-core";

export class Board extends Plugin {
  #notes: unknown[] = [];
  pin(note: unknown): void {
    this.#notes.push(note);
  }
  notes(): unknown[] {
    return this.#notes;
  }
}
`,
  "plugins/Board/plugin_config.yml": `description: Pins what is published to notes/...
version: 1.0.0
remote: true
endpoints:
  - internal_name: pin
    access_name: pin
    topic: notes/>
    tags: [board]
    remote: true
    arguments:
      - name: note
        type: any
  - internal_name: notes
    access_name: notes
    tags: [board, read]
    remote: true
`,
};

const TICKER = {
  "plugins/Ticker/plugin.ts": `import { Plugin } from "aio-assistant-core";

export class Ticker extends Plugin {
  #timer: ReturnType<typeof setInterval> | undefined;
  #n = 0;
  override onEnable(): void {
    this.#timer = setInterval(() => void this.notify("ticks/" + (this.#n++ % 2 ? "odd" : "even"), this.#n), 50);
  }
  override onDisable(): void {
    clearInterval(this.#timer);
  }
}
`,
  "plugins/Ticker/plugin_config.yml": "version: 1.0.0\nremote: true\nendpoints: []\n",
};

/** Publishes to a malformed topic on enable, without awaiting it: a rejection nobody handles. */
const CARELESS = {
  "plugins/Careless/plugin.ts": `import { Plugin } from "aio-assistant-core";

export class Careless extends Plugin {
  override onEnable(): void {
    void this.notify("bad//topic", 1);
  }
}
`,
  "plugins/Careless/plugin_config.yml": "version: 1.0.0\nendpoints: []\n",
};

let dir: string;
let node: RunningNode;
const withSecret = { env: { AIO_SECRET: SECRET } };

beforeAll(async () => {
  dir = project(
    { ...BOARD, ...TICKER, ...CARELESS },
    { plugins: ["Calc", "Board", "Ticker", "Careless"], networking: NETWORK },
  );
  node = await startNode(dir, ["config.yml"], { AIO_SECRET: SECRET });
});

afterAll(async () => {
  await stopNodes();
  removeTempDirs();
});

describe("aio publish", () => {
  it("--node: prints how many subscribers got it, signed; the subscriber has it", async () => {
    const r = await aio(["publish", "notes/today", '"buy milk"', "--node", node.url], withSecret);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("1\n");
    expect(r.code).toBe(0);
    const notes = await aio(["call", "Board", "notes", "--node", node.url], withSecret);
    expect(JSON.parse(notes.stdout)).toContain("buy milk");
    const none = await aio(["publish", "other/topic", "--node", node.url], withSecret);
    expect(none.stdout).toBe("0\n");
  });

  it("refuses a malformed topic and bad JSON with exit codes, and an unsigned publish", async () => {
    const wild = await aio(["publish", "notes/*", "1", "--node", node.url], withSecret);
    expect(wild.code).toBe(1);
    expect(wild.stderr).toMatch(/^(BAD_REQUEST|INVALID_ARGUMENTS): .*wildcard/m);
    const json = await aio(["publish", "notes/x", "{oops", "--node", node.url], withSecret);
    expect(json.code).toBe(2);
    const unsigned = await aio(["publish", "notes/x", "1", "--node", node.url]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toMatch(/UNAUTHORIZED/);
  });

  it("--config: an in-process node publishes to its own subscribers", async () => {
    const local = project(BOARD, { plugins: ["Board"] });
    const r = await aio(["publish", "notes/a/b", "[1]", "--config", "config.yml"], { cwd: local });
    expect(r.stdout).toBe("1\n");
    expect(r.code).toBe(0);
  });
});

describe("aio endpoints", () => {
  it("--tag: endpoints of the node with the tag, with node, plugin, kind, tags and topic", async () => {
    const r = await aio(["endpoints", "--tag", "board", "--node", node.url], withSecret);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/NODE\s+PLUGIN\s+ENDPOINT\s+KIND\s+TAGS\s+TOPIC/);
    expect(r.stdout).toMatch(/Board\s+pin\s+function\s+board\s+notes\/>/);
    expect(r.stdout).toMatch(/Board\s+notes\s+function\s+board, read/);
    expect(r.stdout).not.toContain("Calc");
    const json = await aio(
      ["endpoints", "--tag", "read", "--json", "--node", node.url],
      withSecret,
    );
    expect(JSON.parse(json.stdout)).toEqual({
      tag: "read",
      endpoints: [
        expect.objectContaining({
          plugin: "Board",
          endpoint: expect.objectContaining({ access_name: "notes" }),
        }),
      ],
    });
  });

  it("without a tag or plugin: every endpoint; with a plugin and --tag: that plugin's tagged ones", async () => {
    const all = await aio(["endpoints", "--json", "--node", node.url], withSecret);
    const names = (
      JSON.parse(all.stdout).endpoints as Array<{
        plugin: string;
        endpoint: { access_name: string };
      }>
    ).map((e) => `${e.plugin}.${e.endpoint.access_name}`);
    expect(names).toEqual(expect.arrayContaining(["Calc.add", "Board.pin", "Board.notes"]));
    const one = await aio(
      ["endpoints", "Board", "--tag", "read", "--json", "--node", node.url],
      withSecret,
    );
    expect(
      JSON.parse(one.stdout).endpoints.map((e: { access_name: string }) => e.access_name),
    ).toEqual(["notes"]);
    const none = await aio(["endpoints", "--tag", "nothing", "--node", node.url], withSecret);
    expect(none.stdout).toBe('No endpoints with the tag "nothing".\n');
  });
});

describe("aio run", () => {
  it("a plugin's rejected promise nobody handles is reported; the node keeps serving", async () => {
    await node.waitFor("nothing handled it", 15_000, "stderr");
    expect(node.stderr).toMatch(
      /ERROR: a promise was rejected .*INVALID_ARGUMENTS: topic "bad\/\/topic" has an empty segment/,
    );
    const r = await aio(["call", "Calc", "add", "[1, 2]", "--node", node.url], withSecret);
    expect(r.stdout).toBe("3\n");
  });
});

describe("aio console: publish, subscribe, topics", () => {
  it("topics lists who subscribes to what; publish counts; subscribe prints what arrives", async () => {
    const input = 'topics\npublish notes/console "from the console"\nsubscribe ticks/> 2\n';
    const r = await aio(["console", "--node", node.url], { input, ...withSecret });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/NODE\s+PATTERN\s+SUBSCRIBER\s+KIND/);
    expect(r.stdout).toMatch(/notes\/>\s+Board\.pin\s+endpoint/);
    expect(r.stdout).toContain("1 subscriber got it");
    const ticks = r.stdout.split("\n").filter((line) => line.startsWith("ticks/"));
    expect(ticks).toHaveLength(2);
    expect(ticks[0]).toMatch(/^ticks\/(odd|even) \d+ {2}\(Ticker on /);
  });
});
