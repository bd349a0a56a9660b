/**
 * How good a shared secret is. The secret is all that keeps other machines from running a
 * node's plugins, and a captured signed request lets anyone test guesses of it offline: a
 * short one is refused, a long but plainly weak one is warned about.
 */
import { randomBytes } from "node:crypto";

/** The fewest characters a secret may have. */
export const MIN_SECRET_LENGTH = 16;

/** How to make a good secret, for messages. */
export const MAKE_A_SECRET =
  "make one with `aio secret` (32 random bytes) or `openssl rand -hex 32`";

/** Words people use for secrets, which guessing tries first. */
const COMMON = [
  "password",
  "passwort",
  "secret",
  "changeme",
  "letmein",
  "qwerty",
  "admin",
  "123456",
];

/** A fresh random secret: 32 bytes, base64url (43 characters), as the contract says. */
export function newSecret(): string {
  return randomBytes(32).toString("base64url");
}

/** Why `secret` is too short to use, or undefined. */
export function tooShort(secret: string): string | undefined {
  if (secret === "" || secret.length >= MIN_SECRET_LENGTH) return undefined;
  return `is ${secret.length} character${secret.length === 1 ? "" : "s"} long; a secret needs at least ${MIN_SECRET_LENGTH}: ${MAKE_A_SECRET}`;
}

/** Why `secret`, long enough, is still easy to guess, or undefined. */
export function looksWeak(secret: string): string | undefined {
  if (secret === "") return undefined;
  const distinct = new Set(secret).size;
  const lower = secret.toLowerCase();
  let why: string | undefined;
  if (distinct < 8)
    why = `is made of only ${distinct} different character${distinct === 1 ? "" : "s"}`;
  else if (/^[\p{L}\s'-]+$/u.test(secret)) why = "is only letters: a word or a phrase";
  else if (/^\d+$/.test(secret)) why = "is only digits";
  else {
    const word = COMMON.find((common) => lower.includes(common));
    if (word) why = `contains "${word}", one of the first guesses`;
  }
  return why && `${why}; a random one is much harder to guess: ${MAKE_A_SECRET}`;
}
