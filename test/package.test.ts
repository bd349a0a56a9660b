/**
 * What a user gets from `npm install`: the package's files, the engines of the whole tree,
 * and where the bundled example writes its logs.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import semver from "semver";
import { afterAll, describe, expect, it } from "vitest";
import { aio, REPO_ROOT, removeTempDirs, tempDir } from "./cli/helpers.js";

const run = promisify(execFile);
afterAll(() => removeTempDirs());

const manifest = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"));

/** Every package.json under node_modules, nested ones included. */
function installedPackages(
  dir = join(REPO_ROOT, "node_modules"),
): { name: string; version: string; engines?: { node?: unknown } }[] {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith(".")) continue;
    const path = join(dir, entry);
    if (entry.startsWith("@")) {
      found.push(...installedPackages(path));
      continue;
    }
    const file = join(path, "package.json");
    if (existsSync(file)) found.push(JSON.parse(readFileSync(file, "utf8")));
    found.push(...installedPackages(join(path, "node_modules")));
  }
  return found;
}

describe("the package", () => {
  it("ships the sources its maps point to, and no logs or build records", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: REPO_ROOT,
    });
    const files: string[] = JSON.parse(stdout)[0].files.map((f: { path: string }) => f.path);
    expect(files).toContain("dist/index.js");
    expect(files).toContain("dist/index.js.map");
    expect(files).toContain("src/index.ts");
    const map = JSON.parse(readFileSync(join(REPO_ROOT, "dist/node/plugin-core.js.map"), "utf8"));
    for (const source of map.sources) {
      expect(files).toContain(join("dist/node", source).replace(/\\/g, "/"));
    }
    expect(files.filter((f) => f.endsWith(".log") || f.includes("/logs/"))).toEqual([]);
    expect(files.filter((f) => f.endsWith(".tsbuildinfo"))).toEqual([]);
  });

  it("installs on the Node versions it says it runs on, with no EBADENGINE anywhere in the tree", () => {
    const ours = semver.minVersion(manifest.engines.node)?.version;
    expect(ours).toBeDefined();
    const refused = installedPackages()
      .filter((p) => typeof p.engines?.node === "string")
      .filter((p) => !semver.satisfies(ours as string, p.engines?.node as string))
      .map((p) => `${p.name}@${p.version} wants node ${p.engines?.node}`);
    expect(refused).toEqual([]);
  });

  it("the bundled example logs to ./logs of the folder it runs in, not into the package", async () => {
    const dir = tempDir();
    const r = await aio(["call", "PluginB", "calculate_square", "6"], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("36\n");
    expect(readdirSync(join(dir, "logs")).some((f) => /^AIO_AI_.*\.log$/.test(f))).toBe(true);
    expect(existsSync(join(REPO_ROOT, "examples", "logs"))).toBe(false);
  });
});
