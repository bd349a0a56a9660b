/**
 * Builds dist/ with tsc only when it is older than the sources: `npm start` on an installed
 * checkout then starts at once (a no-op tsc run still costs seconds), while an edited file, a
 * pull or a switched branch is still noticed. Stale means some file under src/ or a tsconfig
 * or package.json is newer than the last build's record (dist/.tsbuildinfo, written by tsc's
 * incremental build, which also keeps the rebuild itself short, and touched after each build).
 */
import { spawnSync } from "node:child_process";
import { readdirSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const record = join(root, "dist", ".tsbuildinfo");

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs; // a file removed or renamed changes its folder's time
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

function builtAt() {
  try {
    return statSync(record).mtimeMs;
  } catch {
    return -1;
  }
}

const sources = ["src", "tsconfig.json", "tsconfig.build.json", "package.json"].map((p) =>
  newest(join(root, p)),
);
if (Math.max(...sources) > builtAt()) {
  process.stderr.write("Building dist/ (sources changed since the last build)…\n");
  const build = spawnSync(process.execPath, [join(root, "scripts/build.mjs")], {
    stdio: "inherit",
  });
  if (build.status !== 0) process.exit(build.status ?? 1);
  // tsc leaves the record alone when nothing it emits changed (a touched file, a checkout).
  const now = new Date();
  utimesSync(record, now, now);
}
