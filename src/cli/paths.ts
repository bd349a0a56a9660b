/** Files the command line finds relative to the installed package. */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const packageRoot = fileURLToPath(new URL("../../", import.meta.url));

export const BUNDLED_EXAMPLE_CONFIG = resolve(packageRoot, "examples", "config.yml");

/**
 * The config a command uses: the one given, else ./config.yml, else the bundled example
 * (`fallback` is then true, and `why` says so).
 */
export function chooseConfig(given: string | undefined): {
  file: string;
  why: string;
  fallback: boolean;
} {
  if (given) return { file: resolve(given), why: "given", fallback: false };
  const local = resolve("config.yml");
  if (existsSync(local)) return { file: local, why: "./config.yml", fallback: false };
  return {
    file: BUNDLED_EXAMPLE_CONFIG,
    why: "no ./config.yml here, so the bundled example",
    fallback: true,
  };
}
