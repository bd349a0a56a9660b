/**
 * `aio new`: the plugin folder it makes loads as it is, type-checks against the package, passes
 * its own test, and is callable once its entry is in config.yml.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { aio, cliEnv, linkPackage, REPO_ROOT, removeTempDirs, tempDir } from "./helpers.js";

const run = promisify(execFile);

afterAll(() => removeTempDirs());

describe("aio new", () => {
  it("creates a plugin that loads, type-checks, passes its test and can be called", async () => {
    // A user's project without "type": "module": the generated files must work there too.
    const dir = tempDir();
    writeFileSync(join(dir, "package.json"), '{ "name": "my-app" }\n');
    linkPackage(dir);

    const made = await aio(["new", "Greeter"], { cwd: dir });
    expect(made.code, made.stderr).toBe(0);
    const folder = join(dir, "plugins", "Greeter");
    expect(readdirSync(folder).sort()).toEqual([
      "Greeter.test.mts",
      "plugin.ts",
      "plugin_config.yml",
    ]);
    expect(readFileSync(join(folder, "plugin.ts"), "utf8")).toContain(
      "export class Greeter extends Plugin {",
    );
    // The entry to add to config.yml, as printed.
    const entry = /Add it to config\.yml, under plugins:\n((?: {2}.*\n)+)/.exec(made.stdout)?.[1];
    expect(entry).toBe("  - name: Greeter\n    enabled: true\n    path: ./plugins/Greeter\n");
    writeFileSync(join(dir, "config.yml"), `plugins:\n${entry}general:\n  log_dir: ""\n`);

    const tsc = join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc");
    const [check, greet, count, test, types] = await Promise.all([
      aio(["check"], { cwd: dir }),
      aio(["call", "Greeter", "greet", '"Ada"'], { cwd: dir }),
      aio(["stream", "Greeter", "count", "2"], { cwd: dir }),
      // The generated test, run as its header says.
      run(process.execPath, ["--import", "tsx", "--test", "./plugins/Greeter/Greeter.test.mts"], {
        cwd: dir,
        env: cliEnv(),
      }).then(
        (r) => ({ code: 0, output: r.stdout + r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({
          code: e.code,
          output: e.stdout + e.stderr,
        }),
      ),
      // Typed against the package, under strict settings.
      run(
        process.execPath,
        [
          tsc,
          "--noEmit",
          "--strict",
          "--noImplicitOverride",
          "--skipLibCheck",
          "--module",
          "nodenext",
          "--moduleResolution",
          "nodenext",
          "--target",
          "es2023",
          "--types",
          "node",
          "plugins/Greeter/plugin.ts",
          "plugins/Greeter/Greeter.test.mts",
        ],
        { cwd: dir },
      ).then(
        () => ({ code: 0, output: "" }),
        (e: { code: number; stdout: string }) => ({ code: e.code, output: e.stdout }),
      ),
    ]);
    expect(check.code, check.stdout).toBe(0);
    expect(check.stdout).toBe("OK config.yml: 1 plugin(s), 3 endpoint(s), no problems.\n");
    expect(greet.stdout).toBe('"Hello, Ada!"\n');
    expect(count.stdout).toBe("1\n2\n");
    expect(test.code, test.output).toBe(0);
    expect(test.output).toMatch(/# pass 5\n# fail 0/);
    expect(types.code, types.output).toBe(0);
  });

  it("refuses to overwrite a folder (exit 1), writes elsewhere with --dir", async () => {
    const dir = tempDir();
    const first = await aio(["new", "Echo", "--dir", "lib/plugins"], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("path: ./lib/plugins/Echo\n");
    const manifest = join(dir, "lib", "plugins", "Echo", "plugin_config.yml");
    writeFileSync(manifest, "edited\n");
    const again = await aio(["new", "Echo", "--dir", "lib/plugins"], { cwd: dir });
    expect(again.code).toBe(1);
    expect(again.stderr).toBe("EXISTS: lib/plugins/Echo already exists; nothing was written\n");
    expect(readFileSync(manifest, "utf8")).toBe("edited\n");
  });

  it.each(["9Lives", "my-plugin", "class", "Plugin", "a b"])(
    "refuses the name %j (exit 2)",
    async (name) => {
      const dir = tempDir();
      const r = await aio(["new", name], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: invalid plugin name: /);
      expect(existsSync(join(dir, "plugins"))).toBe(false);
    },
  );
});
