/**
 * HMAC-SHA256 (RFC 2104, FIPS 180-4) for the many small messages a node signs and checks: a
 * channel or a NATS pipe MACs every message, twice per side and call.
 *
 * Why not node:crypto alone: each one-shot `crypto.hash` is a call into OpenSSL that, on a CPU
 * that was idle since the last message (every call at 1 in flight), costs 10–12 µs, and an
 * HMAC takes two; `createHmac` costs more still. This SHA-256 stays in JIT-compiled code, and
 * the key's two padded blocks are hashed once, when the key is made: a MAC of a 100-byte
 * message is then three compressions, and costs ~8 µs on an idle CPU against ~25 µs for the
 * same MAC in OpenSSL (bench/README.md, "Over NATS"). OpenSSL is faster once it is warm and
 * the input is long, so inputs over {@link JS_LIMIT} bytes are hashed there, as two one-shot
 * hashes over the padded keys (cheaper than `createHmac`'s setup for each message).
 * test/net/hmac.test.ts checks both ways against `createHmac` over many lengths and texts.
 */
import { hash } from "node:crypto";

/** SHA-256's round constants (FIPS 180-4, 4.2.2). */
const K = Int32Array.of(
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
);
/** SHA-256's initial hash value (FIPS 180-4, 5.3.3). */
const IV = Int32Array.of(
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
);
const BLOCK = 64;
/** Hex characters of a MAC. */
export const MAC_HEX_LENGTH = 64;
/**
 * Longer inputs go to OpenSSL. Warm, this code hashes a 64-byte block in ~0.3 µs and OpenSSL
 * a whole MAC of 500 bytes in 1.6 µs; cold, a short MAC here costs a third of OpenSSL's. A
 * call or its result is 40–200 bytes; a batch of them at 64 in flight is longer, and warm.
 */
const JS_LIMIT = 384;

/** The message schedule, shared: `compress` runs to its end before anything else can. */
const W = new Int32Array(64);

/** Folds the 64-byte block at `bytes[at]` into `state`. */
function compress(state: Int32Array, bytes: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++) {
    const j = at + i * 4;
    W[i] =
      ((bytes[j] as number) << 24) |
      ((bytes[j + 1] as number) << 16) |
      ((bytes[j + 2] as number) << 8) |
      (bytes[j + 3] as number);
  }
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15] as number;
    const y = W[i - 2] as number;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = ((W[i - 16] as number) + s0 + (W[i - 7] as number) + s1) | 0;
  }
  let a = state[0] as number;
  let b = state[1] as number;
  let c = state[2] as number;
  let d = state[3] as number;
  let e = state[4] as number;
  let f = state[5] as number;
  let g = state[6] as number;
  let h = state[7] as number;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + (K[i] as number) + (W[i] as number)) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = ((state[0] as number) + a) | 0;
  state[1] = ((state[1] as number) + b) | 0;
  state[2] = ((state[2] as number) + c) | 0;
  state[3] = ((state[3] as number) + d) | 0;
  state[4] = ((state[4] as number) + e) | 0;
  state[5] = ((state[5] as number) + f) | 0;
  state[6] = ((state[6] as number) + g) | 0;
  state[7] = ((state[7] as number) + h) | 0;
}

/** The character code of hex digit `n` (0–15), branch-free: MACs are checked with it. */
function hexCode(n: number): number {
  return 48 + n + (((9 - n) >> 31) & 39);
}

/** An HMAC-SHA256 key that MACs many messages; one object computes one MAC at a time. */
export class MacKey {
  /** `key ⊕ ipad`, which OpenSSL's inner hash starts with. */
  readonly #innerPad: Buffer;
  /** `key ⊕ opad`, then room for the inner digest: what OpenSSL's outer hash takes. */
  readonly #outerInput: Buffer;
  /** The hash state after `key ⊕ ipad`, and after `key ⊕ opad`: where every MAC starts. */
  readonly #inner = new Int32Array(8);
  readonly #outer = new Int32Array(8);
  readonly #state = new Int32Array(8);
  readonly #block = new Uint8Array(BLOCK);
  /** Bytes waiting in #block. */
  #filled = 0;
  /** Bytes hashed since the padded key block. */
  #length = 0;
  /** The last MAC, as bytes. */
  readonly #mac = new Uint8Array(32);

  constructor(key: Uint8Array) {
    const padded = Buffer.alloc(BLOCK);
    // A key longer than a block is hashed first (RFC 2104).
    padded.set(key.length > BLOCK ? hash("sha256", key, "buffer") : key);
    const pad = (byte: number) => Buffer.from(padded.map((x) => x ^ byte));
    this.#innerPad = pad(0x36);
    this.#outerInput = Buffer.concat([pad(0x5c), Buffer.alloc(32)]);
    this.#inner.set(IV);
    compress(this.#inner, this.#innerPad, 0);
    this.#outer.set(IV);
    compress(this.#outer, this.#outerInput, 0);
  }

  /** The MAC, as hex, of `text`'s UTF-8 bytes. */
  hex(text: string): string {
    if (text.length > JS_LIMIT) {
      const length = Buffer.byteLength(text, "utf8");
      const input = Buffer.allocUnsafe(BLOCK + length);
      input.write(text, BLOCK, length, "utf8");
      return this.#openssl(input).toString("hex");
    }
    this.#begin();
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code < 0x80) this.#byte(code);
      else {
        // The rest as UTF-8: what comes before is ASCII, so the split is between characters.
        const rest = Buffer.from(text.slice(i), "utf8");
        this.#bytes(rest, 0, rest.length);
        break;
      }
    }
    this.#finish();
    let hex = "";
    for (const byte of this.#mac)
      hex += String.fromCharCode(hexCode(byte >>> 4), hexCode(byte & 15));
    return hex;
  }

  /** Writes the MAC of `label` (ASCII) and `bytes[start, end)` as hex to `out[at, at + 64)`. */
  writeHex(
    label: string,
    bytes: Uint8Array,
    start: number,
    end: number,
    out: Uint8Array,
    at: number,
  ): void {
    this.#compute(label, bytes, start, end);
    for (let i = 0; i < 32; i++) {
      const byte = this.#mac[i] as number;
      out[at + 2 * i] = hexCode(byte >>> 4);
      out[at + 2 * i + 1] = hexCode(byte & 15);
    }
  }

  /**
   * Whether `mac[at, at + 64)` holds the MAC of `label` (ASCII) and `bytes[start, end)` as hex,
   * compared in constant time.
   */
  checkHex(
    label: string,
    bytes: Uint8Array,
    start: number,
    end: number,
    mac: Uint8Array,
    at: number,
  ): boolean {
    this.#compute(label, bytes, start, end);
    let difference = 0;
    for (let i = 0; i < 32; i++) {
      const byte = this.#mac[i] as number;
      difference |= (mac[at + 2 * i] as number) ^ hexCode(byte >>> 4);
      difference |= (mac[at + 2 * i + 1] as number) ^ hexCode(byte & 15);
    }
    return difference === 0;
  }

  #compute(label: string, bytes: Uint8Array, start: number, end: number): void {
    if (label.length + end - start > JS_LIMIT) {
      const input = Buffer.allocUnsafe(BLOCK + label.length + end - start);
      input.write(label, BLOCK, "latin1");
      input.set(bytes.subarray(start, end), BLOCK + label.length);
      this.#mac.set(this.#openssl(input));
      return;
    }
    this.#begin();
    for (let i = 0; i < label.length; i++) this.#byte(label.charCodeAt(i));
    this.#bytes(bytes, start, end);
    this.#finish();
  }

  /** The MAC, by OpenSSL, of what `input` holds after its first block, which it overwrites. */
  #openssl(input: Buffer): Buffer {
    this.#innerPad.copy(input, 0);
    hash("sha256", input, "buffer").copy(this.#outerInput, BLOCK);
    return hash("sha256", this.#outerInput, "buffer");
  }

  #begin(): void {
    this.#state.set(this.#inner);
    this.#filled = 0;
    this.#length = 0;
  }

  #byte(byte: number): void {
    this.#block[this.#filled++] = byte;
    this.#length++;
    if (this.#filled === BLOCK) {
      compress(this.#state, this.#block, 0);
      this.#filled = 0;
    }
  }

  #bytes(bytes: Uint8Array, start: number, end: number): void {
    const block = this.#block;
    let filled = this.#filled;
    let i = start;
    this.#length += end - start;
    if (filled !== 0) {
      const take = Math.min(BLOCK - filled, end - i);
      for (let k = 0; k < take; k++) block[filled + k] = bytes[i + k] as number;
      filled += take;
      i += take;
      if (filled === BLOCK) {
        compress(this.#state, block, 0);
        filled = 0;
      }
    }
    if (filled === 0) {
      for (; end - i >= BLOCK; i += BLOCK) compress(this.#state, bytes, i);
      filled = end - i;
      for (let k = 0; k < filled; k++) block[k] = bytes[i + k] as number;
    }
    this.#filled = filled;
  }

  /** Pads the inner hash, then hashes its digest under `key ⊕ opad`, into #mac. */
  #finish(): void {
    const block = this.#block;
    const bits = (BLOCK + this.#length) * 8;
    block[this.#filled] = 0x80;
    if (this.#filled + 1 > BLOCK - 8) {
      block.fill(0, this.#filled + 1);
      compress(this.#state, block, 0);
      block.fill(0, 0, BLOCK - 8);
    } else block.fill(0, this.#filled + 1, BLOCK - 8);
    writeLength(block, bits);
    compress(this.#state, block, 0);
    writeWords(this.#state, block);
    block[32] = 0x80;
    block.fill(0, 33, BLOCK - 8);
    writeLength(block, (BLOCK + 32) * 8);
    this.#state.set(this.#outer);
    compress(this.#state, block, 0);
    writeWords(this.#state, this.#mac);
  }
}

/** The message length in bits, big-endian, in the block's last 8 bytes. */
function writeLength(block: Uint8Array, bits: number): void {
  const high = Math.floor(bits / 2 ** 32);
  const low = bits >>> 0;
  block[56] = high >>> 24;
  block[57] = (high >>> 16) & 0xff;
  block[58] = (high >>> 8) & 0xff;
  block[59] = high & 0xff;
  block[60] = low >>> 24;
  block[61] = (low >>> 16) & 0xff;
  block[62] = (low >>> 8) & 0xff;
  block[63] = low & 0xff;
}

/** The eight state words, big-endian, at the start of `out`. */
function writeWords(state: Int32Array, out: Uint8Array): void {
  for (let i = 0; i < 8; i++) {
    const word = state[i] as number;
    out[4 * i] = word >>> 24;
    out[4 * i + 1] = (word >>> 16) & 0xff;
    out[4 * i + 2] = (word >>> 8) & 0xff;
    out[4 * i + 3] = word & 0xff;
  }
}
