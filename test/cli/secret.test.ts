/** `aio secret`: a fresh random secret, and nothing else, on stdout. */
import { describe, expect, it } from "vitest";
import { aio } from "./helpers.js";

describe("aio secret", () => {
  it("prints 32 random bytes as base64url, a new one each time", async () => {
    const [first, second] = await Promise.all([aio(["secret"]), aio(["secret"])]);
    for (const result of [first, second]) {
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
      expect(Buffer.from(result.stdout.trim(), "base64url")).toHaveLength(32);
      expect(result.stderr).toBe("");
    }
    expect(first?.stdout).not.toBe(second?.stdout);
  });
});
