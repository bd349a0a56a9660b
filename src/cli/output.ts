/**
 * How the command line talks to people and scripts: exit codes, errors as `CODE: message`,
 * aligned tables, colors (off with NO_COLOR or when not a terminal), and a stdout that carries
 * only the command's output.
 */
import { isAbsolute, relative } from "node:path";

/** Exit codes of every command (docs/cli.md lists them). */
export const EXIT = {
  OK: 0,
  /** The command ran and failed: a call's error, problems found by check, a refused action. */
  FAILED: 1,
  /** The command line itself is wrong: unknown command or flag, missing or malformed argument. */
  USAGE: 2,
  /** `aio run` stopped by a second signal without waiting for plugins. */
  FORCED: 130,
} as const;

/** `CODE: message` for anything thrown: an AioError, a CliError, or anything else. */
export function describeError(error: unknown): string {
  if (error && typeof error === "object") {
    const { code, message } = error as { code?: unknown; message?: unknown };
    const text = typeof message === "string" ? message : String(error);
    if (typeof code === "string" && /^[A-Z][A-Z0-9_]*$/.test(code)) return `${code}: ${text}`;
    return `ERROR: ${text}`;
  }
  return `ERROR: ${String(error)}`;
}

/** Whether text for `stream` may carry colors: a terminal, and NO_COLOR unset or empty. */
export function colorsFor(stream: NodeJS.WriteStream): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR;
}

const CODES = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;
export type Color = keyof typeof CODES;

export function paint(text: string, color: Color, enabled: boolean): string {
  return enabled ? `\u001b[${CODES[color]}m${text}\u001b[0m` : text;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: removing escape sequences is the point
const ESCAPES = /\u001b\[[0-9;]*m/g;
const visibleLength = (text: string) => text.replace(ESCAPES, "").length;

/**
 * Rows as aligned columns, two spaces apart; the first row is the header. Cells may carry
 * colors; they do not count towards the width.
 */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, column) => {
      widths[column] = Math.max(widths[column] ?? 0, visibleLength(cell));
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell + " ".repeat((widths[column] ?? 0) - visibleLength(cell)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** A path as shown to people: relative to the working directory when inside it. */
export function shownPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel === "" || rel.startsWith("..") || isAbsolute(rel) ? file : rel;
}

/** Control characters from remote text (plugin names, error messages) must not drive a terminal. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;
export function safe(text: string): string {
  return text.replace(UNSAFE, "");
}

/** stdout's own write, which `out` keeps using after reserveStdout(). */
const writeStdout = process.stdout.write.bind(process.stdout);

/**
 * From now on stdout carries only what `out` writes: anything else written to it (a plugin's
 * console.log, in this thread or a worker's) goes to stderr, so `aio call … | jq` sees only
 * the result.
 */
export function reserveStdout(): void {
  process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write;
}

/** Writes the command's output to stdout. */
export function out(text: string): void {
  writeStdout(text.endsWith("\n") ? text : `${text}\n`);
}

/** Writes a message for people to stderr. */
export function note(text: string): void {
  process.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** Exits once stdout and stderr have taken everything written to them. */
export async function exitWhenFlushed(code: number): Promise<never> {
  const flush = (stream: NodeJS.WriteStream, write: (text: string, done: () => void) => void) =>
    new Promise<void>((resolve) => {
      if (stream.destroyed || !stream.writable) return resolve();
      write("", () => resolve());
    });
  await Promise.all([
    flush(process.stdout, writeStdout),
    flush(process.stderr, (text, done) => process.stderr.write(text, done)),
  ]);
  process.exit(code);
}

/** A JSON value as the commands print it: indented for `call`, one line for `stream`. */
export function json(value: unknown, indent = 2): string {
  return JSON.stringify(value === undefined ? null : value, null, indent);
}

/** "3.2 s ago", "now", "never" for a time in milliseconds since the epoch (0: never). */
export function ago(time: number, now = Date.now()): string {
  if (!time) return "never";
  const seconds = Math.max(0, (now - time) / 1000);
  if (seconds < 1) return "now";
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

/**
 * A status line on stderr for long work (loading plugins, waiting for nodes), redrawn in
 * place on a terminal and silent otherwise, so logs and pipes stay clean.
 */
export class Progress {
  readonly #enabled: boolean;
  #shown = false;
  /** The writes of stdout and stderr before this line took them over. */
  #writes: { out: typeof process.stdout.write; err: typeof process.stderr.write } | undefined;

  constructor(enabled: boolean = process.stderr.isTTY === true) {
    this.#enabled = enabled;
  }

  update(text: string): void {
    if (!this.#enabled) return;
    const width = process.stderr.columns ? process.stderr.columns - 1 : 100;
    const line = text.length > width ? `${text.slice(0, width - 1)}…` : text;
    this.#takeOver();
    // The cursor goes back to the start, so a log line written meanwhile overwrites it.
    this.#writes?.err.call(process.stderr, `\r\u001b[K${line}\r`);
    this.#shown = true;
  }

  /**
   * Until clear(), anything written to stdout or stderr (a plugin's console.log) first erases
   * the status line, so the two do not mix. (The core's logger writes to the file descriptor
   * directly; its lines start at the cursor, over the status line.)
   */
  #takeOver(): void {
    if (this.#writes) return;
    const writes = { out: process.stdout.write, err: process.stderr.write };
    this.#writes = writes;
    const erasing = <T extends typeof process.stdout.write>(stream: NodeJS.WriteStream, write: T) =>
      ((...args: Parameters<T>) => {
        if (this.#shown) {
          writes.err.call(process.stderr, "\r\u001b[K");
          this.#shown = false;
        }
        return write.apply(stream, args);
      }) as T;
    process.stdout.write = erasing(process.stdout, writes.out);
    process.stderr.write = erasing(process.stderr, writes.err);
  }

  clear(): void {
    const writes = this.#writes;
    if (!writes) return;
    if (this.#shown) writes.err.call(process.stderr, "\r\u001b[K");
    this.#shown = false;
    process.stdout.write = writes.out;
    process.stderr.write = writes.err;
    this.#writes = undefined;
  }
}
