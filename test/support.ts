/**
 * What every area's test helpers need alike: temporary folders written from strings and
 * removed afterwards, awaiting a condition with a deadline instead of sleeping, a free port,
 * and a store plugin code in this process can reach.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const roots: string[] = [];

/** A fresh temporary folder, removed by {@link removeTempDirs}. */
export function tempDir(prefix = "aio-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  roots.push(dir);
  return dir;
}

/** Removes every folder {@link tempDir} made so far. */
export function removeTempDirs(): void {
  for (const dir of roots.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Writes `files` (relative path -> content) under `dir`, creating folders as needed. */
export function writeTree(dir: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const file = join(dir, rel);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
}

/**
 * Polls `condition` every 10 ms until it returns a truthy value (returned) or `timeoutMs`
 * passes (throws, naming `what`). Never a fixed sleep: it returns as soon as the condition holds.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  what: string,
  timeoutMs = 5000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A TCP port free on 127.0.0.1 right now (taken from the OS, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** A process-wide store plugin code in this process can write to (plugins share the process). */
export function shared<T extends object>(key: string, initial: T): T {
  (globalThis as Record<string, unknown>)[key] = initial;
  return initial;
}

/** Plugin code referring to a {@link shared} store. */
export function sharedRef(key: string): string {
  return `(globalThis as any)[${JSON.stringify(key)}]`;
}
