import { isDeepStrictEqual } from "node:util";
import { type ExecuteOptions, Plugin } from "aio-assistant-core";

type Host = ExecuteOptions["host"];

interface Case {
  id: string;
  expected: unknown;
  run: () => unknown;
}

/** The result of a run cut short because the plugin was disabled or the node is closing. */
const STOPPED = "STOPPED";

/**
 * Runs a matrix of calls against InteropTarget and logs a PASS or FAIL line per case.
 *
 * The run that `run_on_enable` starts is background work: onDisable stops it (as the node
 * closing does), and a call refused because the node is closing (`CLOSED`) ends it quietly
 * rather than as a FAIL. Any other error is a FAIL.
 */
export class InteropCaller extends Plugin {
  /** Aborted by onDisable: stops the run onEnable started. */
  #startup: AbortController | undefined;

  override onEnable(): void {
    const args = this.arguments as { run_on_enable?: boolean } | undefined;
    if (!args?.run_on_enable) return;
    const startup = new AbortController();
    this.#startup = startup;
    // Not awaited: the node finishes starting while the matrix runs.
    void (async () => {
      const outcome = await this.#runSuite("any", startup.signal);
      if (outcome !== STOPPED) this.logger.info(`interop_run: ${outcome}`);
      const syncOutcome = outcome === STOPPED ? STOPPED : this.#runSuiteSync("any", startup.signal);
      if (syncOutcome === STOPPED) this.logger.debug("interop run stopped: the plugin is stopping");
      else this.logger.info(`interop_run_sync: ${syncOutcome}`);
    })();
  }

  override onDisable(): void {
    this.#startup?.abort();
    this.#startup = undefined;
  }

  #report(id: string, got: unknown, expected: unknown): boolean {
    const passed = isDeepStrictEqual(got, expected);
    const line = `[${id}] ${passed ? "PASS" : "FAIL"} - got=${JSON.stringify(got)} expected=${JSON.stringify(expected)}`;
    if (passed) this.logger.info(line);
    else this.logger.error(line);
    return passed;
  }

  #reportError(id: string, error: unknown): false {
    const code = (error as { code?: string }).code;
    this.logger.error(`[${id}] FAIL - ${code ? `${code}: ` : ""}${(error as Error).message}`);
    return false;
  }

  static #outcome(failures: number): string {
    return failures === 0 ? "OK" : `FAIL (${failures} failed)`;
  }

  /** Whether a case's error means "stop", not "failed": the run was stopped, or the node is closing. */
  static #stopping(error: unknown, signal: AbortSignal | undefined): boolean {
    return signal?.aborted === true || (error as { code?: unknown }).code === "CLOSED";
  }

  /** The matrix through execute and executeStream. */
  run_suite(host: Host = "any"): Promise<string> {
    return this.#runSuite(host);
  }

  async #runSuite(host: Host, signal?: AbortSignal): Promise<string> {
    const options = signal ? { host, signal } : { host };
    const collect = async (method: string, args: unknown) => {
      const items: unknown[] = [];
      for await (const item of this.executeStream("InteropTarget", method, args, options)) {
        items.push(item);
      }
      return items;
    };
    const cases: Array<Omit<Case, "run"> & { run: () => Promise<unknown> }> = [
      {
        id: "val_async_to_async_tuple",
        expected: 5,
        run: () => this.execute("InteropTarget", "it_async_add", [2, 3], options),
      },
      {
        id: "val_async_to_sync_kwargs",
        expected: 15,
        run: () => this.execute("InteropTarget", "it_sync_add", { a: 7, b: 8 }, options),
      },
      {
        id: "val_single_arg_async",
        expected: [6, 7],
        run: async () => [
          await this.execute("InteropTarget", "it_sync_add", 5, options),
          await this.execute("InteropTarget", "it_async_add", 6, options),
        ],
      },
      {
        id: "stream_asyncgen_async",
        expected: ["ag0", "ag1", "ag2"],
        run: () => collect("it_async_gen", { n: 3, prefix: "ag" }),
      },
      {
        id: "stream_syncgen_async",
        expected: ["g0", "g1", "g2"],
        run: () => collect("it_sync_gen", { n: 3, prefix: "g" }),
      },
    ];
    let failures = 0;
    for (const { id, expected, run } of cases) {
      if (signal?.aborted) return STOPPED;
      try {
        if (!this.#report(id, await run(), expected)) failures++;
      } catch (error) {
        if (InteropCaller.#stopping(error, signal)) return STOPPED;
        failures++;
        this.#reportError(id, error);
      }
    }
    return InteropCaller.#outcome(failures);
  }

  /**
   * The matrix through executeSync and executeStreamSync. Blocking on an async target needs
   * this plugin to run with `isolation: worker` (as examples/config.yml sets it); on the main
   * thread those cases fail with WOULD_DEADLOCK, by design.
   */
  run_suite_sync(host: Host = "any"): string {
    return this.#runSuiteSync(host);
  }

  /** Blocking calls take no signal: `signal` is checked between cases. */
  #runSuiteSync(host: Host, signal?: AbortSignal): string {
    const options = { host };
    const collect = (method: string, args: unknown) => [
      ...this.executeStreamSync("InteropTarget", method, args, options),
    ];
    const cases: Case[] = [
      {
        id: "val_sync_to_async_tuple",
        expected: 10,
        run: () => this.executeSync("InteropTarget", "it_async_add", [4, 6], options),
      },
      {
        id: "val_sync_to_sync_kwargs",
        expected: 10,
        run: () => this.executeSync("InteropTarget", "it_sync_add", { a: 9, b: 1 }, options),
      },
      {
        id: "val_single_arg_sync",
        expected: [6, 7],
        run: () => [
          this.executeSync("InteropTarget", "it_sync_add", 5, options),
          this.executeSync("InteropTarget", "it_async_add", 6, options),
        ],
      },
      {
        id: "stream_asyncgen_sync",
        expected: ["ax0", "ax1"],
        run: () => collect("it_async_gen", { n: 2, prefix: "ax" }),
      },
      {
        id: "stream_syncgen_sync",
        expected: ["sx0", "sx1"],
        run: () => collect("it_sync_gen", [2, "sx"]),
      },
    ];
    let failures = 0;
    for (const { id, expected, run } of cases) {
      if (signal?.aborted) return STOPPED;
      try {
        if (!this.#report(id, run(), expected)) failures++;
      } catch (error) {
        if (InteropCaller.#stopping(error, signal)) return STOPPED;
        failures++;
        this.#reportError(id, error);
      }
    }
    return InteropCaller.#outcome(failures);
  }
}
