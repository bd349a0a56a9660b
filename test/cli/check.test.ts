/**
 * `aio check`: every problem of config.yml, the manifests and the plugin modules, each with its
 * file and line, without starting a core (no onLoad runs).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { aio, configYaml, project, removeTempDirs, tempDir } from "./helpers.js";

afterAll(() => removeTempDirs());

describe.concurrent("aio check", () => {
  it("a sound config: exit 0 with a summary, and no plugin's onLoad runs", async () => {
    const dir = project({
      "plugins/Marker/plugin.ts": `import { writeFileSync } from "node:fs";
import { Plugin } from "aio-assistant-core";
export class Marker extends Plugin {
  override onLoad(): void {
    writeFileSync(new URL("./loaded.txt", import.meta.url), "onLoad ran");
  }
  mark(): string {
    return "marked";
  }
  // A function in a field is served like a method; check finds it on an instance.
  unmark = (): string => "unmarked";
}
`,
      "plugins/Marker/plugin_config.yml":
        "description: m\nversion: 1.0.0\nendpoints:\n  - internal_name: mark\n  - internal_name: unmark\n",
      "config.yml": configYaml({ plugins: ["Calc", "Marker"] }),
    });
    const r = await aio(["check"], { cwd: dir });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toBe("OK config.yml: 2 plugin(s), 8 endpoint(s), no problems.\n");
    expect(r.stderr).not.toContain("Calc says hello");
    expect(existsSync(join(dir, "plugins", "Marker", "loaded.txt"))).toBe(false);
  });

  it("reports every problem as file:line key: message, and exits 1", async () => {
    const dir = project({
      "plugins/Shapes/plugin.ts": `import { Plugin } from "aio-assistant-core";
export class Shapes extends Plugin {
  area(): number {
    return 1;
  }
  get sides(): number {
    return 4;
  }
}
`,
      "plugins/Shapes/plugin_config.yml": `description: shapes
version: 1.0.0
endpoints:
  - internal_name: area
  - internal_name: perimeter
  - internal_name: sides
  - internal_name: execute
    access_name: run
`,
      "plugins/Typo/plugin.ts": `import { Plugin } from "aio-assistant-core";
export class Typo extends Plugin {
  go(): void {}
}
`,
      "plugins/Typo/plugin_config.yml": `description: typo
version: 1.0.0
endpoints:
  - internal_name: go
    arguments:
      - name: speed
        type: integer
`,
      "plugins/Broken/plugin.ts": `import { Plugin } from "aio-assistant-core";
export class Broken extends Plugin {
  oops( {
}
`,
      "plugins/Broken/plugin_config.yml": "description: b\nversion: 1.0.0\nendpoints: []\n",
      "plugins/Unrelated/plugin.ts": "export class Unrelated {}\n",
      "plugins/Unrelated/plugin_config.yml": "description: u\nversion: 1.0.0\nendpoints: []\n",
      "config.yml": `plugins:
  - name: Shapes
    enabled: true
  - name: Typo
    enabled: true
  - name: Shapes
    enabled: true
  - name: Gone
    enabled: false
    path: ./nowhere
  - name: Broken
    enabled: true
  - name: Unrelated
    enabled: true
general:
  plugin_package: plugins
  consol_log_level: INFO
`,
    });
    const r = await aio(["check", "config.yml"], { cwd: dir });
    expect(r.code).toBe(1);
    const lines = r.stdout.split("\n");
    const expected = [
      /^plugins\/Shapes\/plugin_config\.yml:5 endpoints\[1\]\.internal_name: Shapes has no method "perimeter"/,
      /^plugins\/Shapes\/plugin_config\.yml:6 endpoints\[2\]\.internal_name: Shapes: "sides" is a getter or setter, not a method$/,
      /^plugins\/Shapes\/plugin_config\.yml:7 endpoints\[3\]\.internal_name: Shapes: "execute" is a member of Plugin itself/,
      /^plugins\/Typo\/plugin_config\.yml:7 endpoints\[0\]\.arguments\[0\]\.type: unknown type "integer".*did you mean "int"\?$/,
      /^config\.yml:6 plugins\[2\]\.name: duplicate plugin name "Shapes"; plugins\[0\] already uses it/,
      /^config\.yml:10 plugins\[3\]\.path: Gone: plugin_config\.yml not found in nowhere \(the folder does not exist\)$/,
      /Plugin "Broken": .*plugins\/Broken\/plugin\.ts failed to import/,
      /Plugin "Unrelated": .*does not extend Plugin/,
      /^warning: config\.yml:17 general\.consol_log_level: unknown key; did you mean "console_log_level"\?$/,
      /^8 problem\(s\) found in config\.yml and its plugins\.$/,
    ];
    for (const pattern of expected) {
      expect(
        lines.some((line) => pattern.test(line)),
        `${pattern}\n${r.stdout}`,
      ).toBe(true);
    }
    expect(r.stdout).not.toMatch(/"area"/);
  });

  it("a config that is not valid YAML: its line, exit 1", async () => {
    const dir = project({ "config.yml": "plugins:\n  - name: Calc\n    enabled: [true\n" });
    const r = await aio(["check"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^config\.yml:\d+ YAML syntax error: /m);
  });

  it("--json for scripts", async () => {
    const dir = project({}, { plugins: ["Calc", "Nobody"] });
    const r = await aio(["check", "--json"], { cwd: dir });
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as {
      config: string;
      ok: boolean;
      plugins: Array<{ name: string; ok: boolean; endpoints: number; version?: string }>;
      problems: string[];
      warnings: string[];
    };
    expect(report.config).toBe(join(dir, "config.yml"));
    expect(report.ok).toBe(false);
    expect(report.plugins).toEqual([
      expect.objectContaining({ name: "Calc", ok: true, endpoints: 6, version: "1.2.3" }),
      expect.objectContaining({ name: "Nobody", ok: false, endpoints: 0 }),
    ]);
    expect(report.problems).toEqual([
      expect.stringMatching(
        /^config\.yml:4 plugins\[1\]\.name: Nobody: plugin_config\.yml not found/,
      ),
    ]);
    expect(report.warnings).toEqual([]);
  });

  it("without ./config.yml it checks the bundled example, and says so", async () => {
    const r = await aio(["check"], { cwd: tempDir() });
    expect(r.code, r.stdout).toBe(0);
    expect(r.stderr).toContain("bundled example");
    expect(r.stdout).toMatch(
      /^OK .*examples\/config\.yml: 7 plugin\(s\), \d+ endpoint\(s\), no problems\.$/m,
    );
  });

  it("a config file that does not exist: exit 1", async () => {
    const r = await aio(["check", "missing.yml"], { cwd: tempDir() });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/config file not found: missing\.yml/);
  });
});
