/**
 * Logging for the core and its plugins: readable lines on stderr, JSON lines in a file.
 *
 * Everything runs in this thread (pino.multistream over SonicBoom streams) rather than in
 * pino transports: each transport starts a worker thread, which costs ~100 ms per core, and
 * tests start many cores.
 */

import fs from "node:fs";
import path from "node:path";
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";
import type { LogLevelName } from "./config/types.js";
import { followed } from "./follow.js";

export type { Logger };

export interface LoggingOptions {
  /** Console level. */
  level: LogLevelName;
  /** Absolute folder for the log file, created if missing; "" means no file. */
  logDir: string;
  /** Name shown for the core's own lines, e.g. "core". */
  name?: string;
  /** Force colors on/off; default: on when stderr is a TTY and NO_COLOR is not set. */
  color?: boolean;
}

/** One line of the log, as `tailLog()` and a node's `POST /log` give it. */
export interface LogLine {
  /** Milliseconds since the epoch. */
  time: number;
  level: LogLevelName;
  /** The plugin that wrote it, or the core's own name ("core"). */
  source: string;
  message: string;
}

/** Lines kept for a new follower of the log. */
export const RECENT_LOG_LINES = 200;

const LEVEL_NAMES: Record<number, LogLevelName> = {
  20: "DEBUG",
  30: "INFO",
  40: "WARNING",
  50: "ERROR",
  60: "CRITICAL",
};

/**
 * The last {@link RECENT_LOG_LINES} lines of INFO and above, and whoever follows new ones: what
 * a dashboard shows as the live tail. Bounded: the ring of recent lines, and followers, which
 * take each line synchronously.
 */
export class LogTail {
  readonly #recent: LogLine[] = [];
  readonly #followers = new Set<(line: LogLine) => void>();

  /** pino's serialized line (one JSON object). */
  write(serialized: string): void {
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(serialized) as Record<string, unknown>;
    } catch {
      return;
    }
    const line: LogLine = {
      time: typeof record.time === "number" ? record.time : Date.now(),
      level: LEVEL_NAMES[record.level as number] ?? "INFO",
      source: String(record.plugin ?? record.name ?? ""),
      message: String(record.msg ?? ""),
    };
    this.#recent.push(line);
    if (this.#recent.length > RECENT_LOG_LINES) this.#recent.shift();
    for (const follower of this.#followers) follower(line);
  }

  recent(): LogLine[] {
    return [...this.#recent];
  }

  /**
   * The recent lines, then each new one, until the consumer stops; one that falls far behind
   * loses the oldest, and a WARNING line says how many.
   */
  lines(): AsyncGenerator<LogLine, void, undefined> {
    return followed<LogLine>(
      (push) => {
        for (const line of this.#recent) push(line);
        return this.follow(push);
      },
      (count) =>
        this.write(
          JSON.stringify({
            time: Date.now(),
            level: 40,
            msg: `a follower of the log fell behind: ${count} line(s) dropped`,
          }),
        ),
      RECENT_LOG_LINES * 5,
    );
  }

  /** Calls `follower` with each new line; returns the function that stops it. */
  follow(follower: (line: LogLine) => void): () => void {
    this.#followers.add(follower);
    return () => this.#followers.delete(follower);
  }
}

export interface Logging {
  logger: Logger;
  /** The recent lines and new ones as they are written. */
  tail: LogTail;
  /** Absolute path of the log file, when there is one. */
  file: string | undefined;
  /** A child logger for a plugin: its lines carry `plugin: name`. */
  forPlugin(name: string): Logger;
  /** Flush everything written so far and close the file; safe to call twice. */
  close(): Promise<void>;
}

type PinoLevel = "debug" | "info" | "warn" | "error" | "fatal";
type Destination = ReturnType<typeof pino.destination>;

const PINO_LEVELS: Record<LogLevelName, PinoLevel> = {
  DEBUG: "debug",
  INFO: "info",
  WARNING: "warn",
  ERROR: "error",
  CRITICAL: "fatal",
};

export function toPinoLevel(level: LogLevelName): PinoLevel {
  return PINO_LEVELS[level];
}

// Log text may come from remote nodes; escape sequences in it must not drive the terminal.
// Tabs and newlines stay. Same set pino-pretty strips from plain messages.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE_CONTROL_CHARS = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g;

/** The original Python system's name: AIO_AI_YYYY-MM-DD_HH-MM-SS.log, in local time. */
function logFileName(now: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  const date = `${now.getFullYear()}-${two(now.getMonth() + 1)}-${two(now.getDate())}`;
  const time = `${two(now.getHours())}-${two(now.getMinutes())}-${two(now.getSeconds())}`;
  return `AIO_AI_${date}_${time}.log`;
}

/** A stream plus whether it has failed: a failed SonicBoom may never emit "close". */
interface Output {
  dest: Destination;
  failed: boolean;
}

function openOutput(dest: Destination, onError: (err: Error) => void): Output {
  const out: Output = { dest, failed: false };
  // Without a listener a disk or pipe error would crash the whole process.
  dest.on("error", (err: Error) => {
    if (out.failed) return;
    out.failed = true;
    try {
      // Drops what is buffered, so pino's flush at process exit does not throw on it again.
      dest.destroy();
    } catch {}
    onError(err);
  });
  return out;
}

function endOutput(out: Output): Promise<void> {
  return new Promise((resolve) => {
    if (out.failed) return resolve();
    out.dest.once("close", () => resolve());
    out.dest.once("error", () => resolve());
    try {
      out.dest.end();
    } catch {
      resolve(); // already destroyed, e.g. by pino's own flush at exit
    }
  });
}

/** Throws when logDir is set but the log file cannot be created there. */
export function createLogging(options: LoggingOptions): Logging {
  const consoleLevel = toPinoLevel(options.level);
  const colorize = options.color ?? (process.stderr.isTTY === true && !process.env.NO_COLOR);
  let closed = false;

  let file: string | undefined;
  let fileFd: number | undefined;
  if (options.logDir !== "") {
    const dir = path.resolve(options.logDir);
    // Opened synchronously, once, so that a bad log_dir throws here for the caller to report,
    // rather than failing later in a stream event (and again in pino's flush at exit).
    fs.mkdirSync(dir, { recursive: true });
    file = path.join(dir, logFileName(new Date()));
    fileFd = fs.openSync(file, "a");
  }

  const prettify = pretty.prettyFactory({
    colorize,
    translateTime: "SYS:HH:MM:ss.l",
    // name and plugin are shown as the [tag] below, not again as fields.
    ignore: "pid,hostname,name,plugin",
    messageFormat: (log, messageKey) => {
      const tag = log.plugin ?? log.name;
      const msg = String(log[messageKey] ?? "");
      const line = tag === undefined ? msg : `[${String(tag)}] ${msg}`;
      return line.replace(UNSAFE_CONTROL_CHARS, "");
    },
  });
  // Nowhere left to report a console failure, so it only stops console output.
  const stderr = openOutput(pino.destination({ dest: 2, sync: false }), () => {});
  const fileOut =
    fileFd === undefined
      ? undefined
      : openOutput(pino.destination({ dest: fileFd, sync: false }), (err) => {
          // The file is out of the picture now, so this reaches the console only.
          logger.error({ err }, `log file ${file} failed; logging to the console only`);
        });

  const tail = new LogTail();
  // The closed/failed checks make logging after close() or a stream error a no-op, not a throw.
  const streams: pino.StreamEntry<PinoLevel>[] = [
    {
      level: "info",
      stream: {
        write(line: string) {
          if (!closed) tail.write(line);
        },
      },
    },
    {
      level: consoleLevel,
      stream: {
        write(line: string) {
          if (!closed && !stderr.failed) stderr.dest.write(prettify(line));
        },
      },
    },
  ];
  if (fileOut !== undefined) {
    streams.push({
      level: "debug",
      stream: {
        write(line: string) {
          if (!closed && !fileOut.failed) fileOut.dest.write(line);
        },
      },
    });
  }

  const logger: Logger = pino(
    {
      // The logger filters before the streams do: with a file it must let DEBUG through, and
      // the tail takes INFO whatever the console shows.
      level: fileOut !== undefined || consoleLevel === "debug" ? "debug" : "info",
      // pid and hostname are the same on every line of one core; name alone tags the core.
      base: options.name === undefined ? {} : { name: options.name },
    },
    pino.multistream(streams),
  );

  let closing: Promise<void> | undefined;
  return {
    logger,
    tail,
    file,
    forPlugin: (name) => logger.child({ plugin: name }),
    close() {
      closing ??= (async () => {
        closed = true;
        const outs = fileOut === undefined ? [stderr] : [stderr, fileOut];
        await Promise.all(outs.map(endOutput));
      })();
      return closing;
    },
  };
}
