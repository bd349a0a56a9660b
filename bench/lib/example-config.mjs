/**
 * examples/config.yml as a config object: the same plugins, but quiet (console ERROR, no log
 * file, so nothing is written into examples/) and without InteropCaller's on-enable suite.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

export function exampleConfig(root) {
  const dir = join(root, "examples");
  const data = parse(readFileSync(join(dir, "config.yml"), "utf8"));
  data.baseDir = dir;
  data.general = { ...data.general, console_log_level: "ERROR", log_dir: "" };
  for (const plugin of data.plugins) {
    if (plugin.name === "InteropCaller") {
      plugin.arguments = { ...plugin.arguments, run_on_enable: false };
    }
  }
  return data;
}
