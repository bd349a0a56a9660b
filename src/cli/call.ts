/** `aio call` and `aio stream`: one call, its result (or items) as JSON on stdout. */
import { UsageError } from "../errors.js";
import { describeError, EXIT, json, note, out } from "./output.js";
import { type TargetOptions, withTarget } from "./target.js";

export interface CallCommandOptions extends TargetOptions {
  host?: string | undefined;
  timeout?: number | undefined;
}

/** The call's arguments from the command line: JSON, or nothing (no arguments). */
export function parseArgs(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `args-json is not valid JSON (${(error as Error).message}): ${JSON.stringify(text)}\n` +
        `Give arguments as JSON: '[2, 3]' (positional), '{"a": 2}' (named), '5' or '"text"' (one argument).`,
    );
  }
}

/**
 * Runs the call; returns the exit code. Ctrl-C (or SIGTERM) interrupts the call (exit 130);
 * a reader that goes away (`| head -1`) stops a stream quietly.
 */
export async function callCommand(
  kind: "call" | "stream",
  plugin: string,
  method: string,
  argsText: string | undefined,
  options: CallCommandOptions,
): Promise<number> {
  const args = parseArgs(argsText);
  const controller = new AbortController();
  let interrupted = false;
  let readerGone = false;
  const interrupt = () => {
    if (interrupted) process.exit(EXIT.FORCED);
    interrupted = true;
    controller.abort();
  };
  process.on("SIGINT", interrupt);
  process.on("SIGTERM", interrupt);
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") return; // main.ts reports any other
    readerGone = true;
    controller.abort();
  });

  return withTarget(options, async (target) => {
    const callOptions = { host: options.host, timeout: options.timeout, signal: controller.signal };
    try {
      if (kind === "call") {
        out(json(await target.execute(plugin, method, args, callOptions)));
      } else {
        for await (const item of target.stream(plugin, method, args, callOptions)) {
          if (readerGone) break;
          out(json(item, 0));
        }
      }
      return EXIT.OK;
    } catch (error) {
      if (readerGone) return EXIT.OK;
      const wrongKind = (error as { code?: unknown }).code === "WRONG_KIND";
      note(
        describeError(error) +
          (wrongKind
            ? `; on the command line: ${kind === "call" ? "aio stream" : "aio call"}`
            : ""),
      );
      return interrupted ? EXIT.FORCED : EXIT.FAILED;
    }
  });
}
