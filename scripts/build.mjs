/**
 * Builds dist/ with tsc, then makes the `aio` command's file executable. tsc writes new files
 * without the execute bit, and npm sets it only when it links the bin: `npx aio` in a checkout
 * whose dist/ was built again from nothing (a fresh clone where an earlier one stood, a removed
 * dist/) would otherwise fail with "Permission denied".
 */
import { spawnSync } from "node:child_process";
import { chmodSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const tsc = spawnSync(
  process.execPath,
  [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")],
  { stdio: "inherit" },
);
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
chmodSync(join(root, "dist/cli/main.js"), 0o755);
