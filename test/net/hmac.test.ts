/**
 * The HMAC-SHA256 that signs channel, pipe and HTTP messages (dist/net/hmac.js) gives exactly
 * what node:crypto's `createHmac` gives: for every input length around SHA-256's block and
 * padding boundaries and around the length where it hands over to OpenSSL, for keys shorter
 * and longer than a block, and for text that is not ASCII.
 */
import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";

// biome-ignore lint/suspicious/noExplicitAny: the built module, untyped from here
const { MacKey }: any = await import("../../dist/net/hmac.js");

const KEYS = [0, 1, 32, 63, 64, 65, 100, 200].map((length) => randomBytes(length));
const expected = (key: Buffer, ...parts: (string | Buffer)[]) => {
  const hmac = createHmac("sha256", key);
  for (const part of parts) hmac.update(part);
  return hmac.digest("hex");
};

describe("MacKey", () => {
  it("hex() of every length from 0 to 700 bytes, for keys of every kind, is createHmac's", () => {
    for (const key of KEYS) {
      const mac = new MacKey(key);
      for (let length = 0; length <= 700; length++) {
        const text = "abcdefghijklmnopqrstuvwxyz{}:,0123456789".repeat(20).slice(0, length);
        expect(mac.hex(text), `key of ${key.length} bytes, text of ${length}`).toBe(
          expected(key, text),
        );
      }
    }
  });

  it("hex() hashes the UTF-8 bytes of any text: accents, emoji, a lone surrogate", () => {
    const key = randomBytes(32);
    const mac = new MacKey(key);
    for (const text of [
      "é",
      'a{"s":"é😀"}',
      `${"x".repeat(63)}é`,
      "\ud800x",
      "x\udc00",
      "😀".repeat(200),
    ]) {
      expect(mac.hex(text), JSON.stringify(text)).toBe(expected(key, text));
    }
  });

  it("writeHex() and checkHex() MAC a label and a range of bytes, and refuse any other MAC", () => {
    for (const key of KEYS) {
      const mac = new MacKey(key);
      for (const length of [0, 1, 55, 56, 64, 119, 120, 300, 400, 5000]) {
        const bytes = randomBytes(length + 10);
        const label = `c\n${length}\n`;
        const out = Buffer.alloc(70);
        mac.writeHex(label, bytes, 5, 5 + length, out, 3);
        const want = expected(key, label, bytes.subarray(5, 5 + length));
        expect(out.toString("latin1", 3, 67), `length ${length}`).toBe(want);
        expect(mac.checkHex(label, bytes, 5, 5 + length, out, 3)).toBe(true);
        // One character off anywhere, an upper-case digit, or another label: refused.
        for (let i = 0; i < 64; i++) {
          const forged = Buffer.from(out);
          forged[3 + i] = forged[3 + i] === 0x30 ? 0x31 : 0x30;
          expect(mac.checkHex(label, bytes, 5, 5 + length, forged, 3)).toBe(false);
        }
        const upper = Buffer.from(out.toString("latin1").toUpperCase(), "latin1");
        if (/[a-f]/.test(want))
          expect(mac.checkHex(label, bytes, 5, 5 + length, upper, 3)).toBe(false);
        expect(mac.checkHex(`s\n${length}\n`, bytes, 5, 5 + length, out, 3)).toBe(false);
      }
    }
  });
});
