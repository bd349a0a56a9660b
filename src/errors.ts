/**
 * Every error AIO Core raises is created here. Those a caller sees are `AioError`s with a stable
 * `code`; the last two sections hold those that never leave the runtime, and the command line's.
 *
 * Callers branch on `err.code`, never on message text: messages are for people and may
 * improve between versions, codes do not change.
 */

/** HTTP status that fits each request error code when it crosses the node protocol. */
export const REQUEST_ERROR_STATUS = {
  PLUGIN_NOT_FOUND: 404,
  ENDPOINT_NOT_FOUND: 404,
  PLUGIN_DISABLED: 503,
  ACCESS_DENIED: 403,
  INVALID_ARGUMENTS: 400,
  WRONG_KIND: 400,
  TIMEOUT: 504,
  ABORTED: 499,
  PLUGIN_ERROR: 500,
  UNLOADED: 503,
  CLOSED: 503,
  NO_NODE: 404,
  UNAUTHORIZED: 401,
  NETWORK: 502,
  WOULD_DEADLOCK: 409,
  OVERLOADED: 429,
  PAYLOAD_TOO_LARGE: 413,
  BAD_REQUEST: 400,
  NO_HANDLER: 404,
} as const;

export type RequestErrorCode = keyof typeof REQUEST_ERROR_STATUS;
export type ConfigErrorCode = "CONFIG_INVALID" | "PLUGIN_LOAD_FAILED";
export type NodeErrorCode = "NODE_CONFLICT" | "NODE_UNREACHABLE";
export type ErrorCode = RequestErrorCode | ConfigErrorCode | NodeErrorCode | "PLUGIN_TYPE_MISMATCH";

/** Base class of every error AIO Core throws. */
export class AioError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Where a configuration problem is: the file, and for YAML the line and key. */
export interface ConfigLocation {
  file?: string;
  line?: number;
  key?: string;
}

/** A problem with config.yml, a plugin manifest, or a plugin that could not be loaded. */
export class ConfigError extends AioError {
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly key: string | undefined;
  /** Every problem found, when one file had several. */
  readonly problems: readonly string[];

  constructor(
    code: ConfigErrorCode,
    message: string,
    location: ConfigLocation = {},
    options?: { cause?: unknown; problems?: readonly string[] },
  ) {
    super(code, message, options);
    this.file = location.file;
    this.line = location.line;
    this.key = location.key;
    this.problems = options?.problems ?? [message];
  }
}

/** Which call an error belongs to. */
export interface CallSite {
  requestId?: string | undefined;
  plugin?: string | undefined;
  method?: string | undefined;
  host?: string | undefined;
}

/** A call failed: the plugin or endpoint is missing, refused, threw, or ran out of time. */
export class RequestError extends AioError {
  declare readonly code: RequestErrorCode;
  readonly requestId: string | undefined;
  readonly plugin: string | undefined;
  readonly method: string | undefined;
  readonly host: string | undefined;
  /** For `PLUGIN_ERROR`: the name of the error the plugin threw, such as `TypeError`. */
  readonly errorName: string | undefined;

  constructor(
    code: RequestErrorCode,
    message: string,
    site: CallSite = {},
    options?: { cause?: unknown; errorName?: string | undefined },
  ) {
    super(code, message, options);
    this.requestId = site.requestId;
    this.plugin = site.plugin;
    this.method = site.method;
    this.host = site.host;
    this.errorName = options?.errorName;
  }

  /** The same error with `detail` added to its message. */
  withDetail(detail: string): RequestError {
    return new RequestError(this.code, `${this.message}${detail}`, this, {
      cause: this.cause,
      errorName: this.errorName,
    });
  }

  /** The HTTP status that fits this error in the node protocol. */
  get status(): number {
    return REQUEST_ERROR_STATUS[this.code] ?? 500;
  }

  /** The `error` object of the node protocol. */
  toJSON(): WireError {
    const wire: WireError = { code: this.code, message: this.message };
    if (this.requestId !== undefined) wire.request_id = this.requestId;
    if (this.plugin !== undefined) wire.plugin = this.plugin;
    if (this.method !== undefined) wire.method = this.method;
    if (this.host !== undefined) wire.host = this.host;
    if (this.errorName !== undefined) wire.error_name = this.errorName;
    return wire;
  }
}

/** A call that failed on its way to or from another node. */
export class NetworkRequestError extends RequestError {}

/** A problem with a remote node itself rather than with one call. */
export class NodeError extends AioError {
  declare readonly code: NodeErrorCode;
  readonly hostname: string | undefined;

  constructor(
    code: NodeErrorCode,
    message: string,
    hostname?: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.hostname = hostname;
  }
}

/** A decorator was applied to something it cannot wrap. */
export class PluginTypeMismatchError extends AioError {
  constructor(message: string) {
    super("PLUGIN_TYPE_MISMATCH", message);
  }
}

/** The `error` member of a node protocol answer. */
export interface WireError {
  code: string;
  message: string;
  request_id?: string;
  plugin?: string;
  method?: string;
  host?: string;
  error_name?: string;
}

/**
 * Marks an error the runtime raised about a call into `plugin` (a timeout, a refused cycle, a
 * crashed worker) where that plugin's code might have thrown, so the call fails with it as it
 * is rather than as the plugin's own PLUGIN_ERROR. The mark names the plugin: the same error
 * thrown on by another plugin's code is that plugin's PLUGIN_ERROR, like anything it throws.
 */
const RUNTIME_FAILURE = Symbol("aio.runtimeFailure");

export function runtimeFailure<E extends RequestError>(error: E, plugin: string): E {
  Object.defineProperty(error, RUNTIME_FAILURE, { value: plugin });
  return error;
}

/** The plugin a runtime failure was raised for, if `value` is one. */
export function runtimeFailureOf(value: unknown): string | undefined {
  return value instanceof RequestError
    ? (value as { [RUNTIME_FAILURE]?: string })[RUNTIME_FAILURE]
    : undefined;
}

export function isAioError(value: unknown): value is AioError {
  return value instanceof AioError;
}

// ---------------------------------------------------------------------------
// Request errors. Each names the call, so a log line alone tells what failed.

function target(site: CallSite): string {
  // A topic request names its topic as the method, with no plugin until a handler is chosen.
  return site.plugin === TOPIC_PLUGIN ? `topic "${site.method}"` : `${site.plugin}.${site.method}`;
}

/** The plugin name a call to a topic carries until it reaches a handler. */
export const TOPIC_PLUGIN = "";

function onHost(site: CallSite): string {
  return site.host && site.host !== "any" ? ` on host "${site.host}"` : "";
}

/** The four ways to call an endpoint. */
export type CallMode = "execute" | "executeStream" | "executeSync" | "executeStreamSync";

/** The call mode that fits an endpoint kind, in the family (sync or async) of `mode`. */
function fittingMethod(kind: string, mode: CallMode): CallMode {
  const sync = mode === "executeSync" || mode === "executeStreamSync";
  switch (kind) {
    case "function":
      return sync ? "executeSync" : "execute";
    case "generator":
      return sync ? "executeStreamSync" : "executeStream";
    case "async generator":
      return "executeStream";
    default:
      return "execute";
  }
}

export const callErrors = {
  pluginNotFound(site: CallSite): RequestError {
    return new RequestError(
      "PLUGIN_NOT_FOUND",
      `No plugin named "${site.plugin}"${onHost(site)}`,
      site,
    );
  },
  endpointNotFound(site: CallSite, known: readonly string[]): RequestError {
    const list = known.length > 0 ? `; it has ${known.join(", ")}` : "; it declares no endpoints";
    return new RequestError(
      "ENDPOINT_NOT_FOUND",
      `Plugin "${site.plugin}" has no endpoint "${site.method}"${list}`,
      site,
    );
  },
  pluginDisabled(site: CallSite, state: string, reason?: string): RequestError {
    const why =
      state === "failed"
        ? `failed${reason ? ` (${reason})` : ""} and cannot serve ${target(site)}`
        : state === "unloaded"
          ? "not loaded; load it first"
          : `${state === "loaded" ? "loaded but not enabled" : state}; enable it before calling ${target(site)}`;
    return new RequestError("PLUGIN_DISABLED", `Plugin "${site.plugin}" is ${why}`, site);
  },
  accessDenied(site: CallSite, why: string): RequestError {
    return new RequestError("ACCESS_DENIED", `${target(site)}: ${why}`, site);
  },
  invalidArguments(site: CallSite, problem: string): RequestError {
    return new RequestError("INVALID_ARGUMENTS", `${target(site)}: ${problem}`, site);
  },
  /**
   * A call of the wrong family for the endpoint's kind. The message names the method of the
   * caller's own family (sync or async) that fits; to a caller from the network, which may
   * be no node at all, it names the route.
   */
  wrongKind(site: CallSite, kind: string, mode: CallMode, fromNetwork = false): RequestError {
    const stream = kind.endsWith("generator");
    const use = fromNetwork
      ? `POST ${stream ? "/execute_stream" : "/execute"}`
      : `${fittingMethod(kind, mode)}()`;
    return new RequestError(
      "WRONG_KIND",
      `${target(site)} is a${kind.startsWith("a") ? "n" : ""} ${kind}; call it with ${use}`,
      site,
    );
  },
  timeout(site: CallSite, ms: number): RequestError {
    return new RequestError("TIMEOUT", `${target(site)} did not finish within ${ms} ms`, site);
  },
  aborted(site: CallSite, reason: unknown): RequestError {
    const why = reason instanceof Error ? `: ${reason.message}` : "";
    return new RequestError("ABORTED", `${target(site)} was aborted by its caller${why}`, site, {
      cause: reason,
    });
  },
  pluginThrew(site: CallSite, thrown: unknown): RequestError {
    if (site.plugin !== undefined && runtimeFailureOf(thrown) === site.plugin) {
      return thrown as RequestError;
    }
    const name = thrown instanceof Error ? thrown.name : typeof thrown;
    const message = thrown instanceof Error ? thrown.message : String(thrown);
    return new RequestError("PLUGIN_ERROR", `${target(site)} threw ${name}: ${message}`, site, {
      cause: thrown,
      errorName: name,
    });
  },
  unloaded(site: CallSite): RequestError {
    return new RequestError(
      "UNLOADED",
      `Plugin "${site.plugin}" was unloaded before ${target(site)} finished`,
      site,
    );
  },
  closed(site: CallSite): RequestError {
    return new RequestError("CLOSED", `The core is closed; ${target(site)} was not run`, site);
  },
  noNode(site: CallSite, why: string): RequestError {
    return new RequestError("NO_NODE", `${target(site)}: ${why}`, site);
  },
  overloaded(site: CallSite, limit: number): RequestError {
    return new RequestError(
      "OVERLOADED",
      `${target(site)}: this node already runs ${limit} calls for the calling node; try again when some finish`,
      site,
    );
  },
  badTopic(site: CallSite, problem: string): RequestError {
    return new RequestError("INVALID_ARGUMENTS", problem, site);
  },
  noHandler(site: CallSite, detail: string): RequestError {
    return new RequestError(
      "NO_HANDLER",
      `No handler of topic "${site.method}" that this caller may use${onHost(site)}${detail}`,
      site,
    );
  },
  closedWhileRunning(site: CallSite): RequestError {
    return new RequestError(
      "NETWORK",
      `${target(site)} was still running when this node closed, past its drain time; it may have run, so it is not repeated`,
      site,
    );
  },
  unreadAnswers(site: CallSite, bytes: number): RequestError {
    return new RequestError(
      "OVERLOADED",
      `${target(site)}: ${bytes} bytes of this node's answers to the caller are not read yet; it takes no more calls until they are`,
      site,
    );
  },
  tooLarge(site: CallSite, limit: number): RequestError {
    return new RequestError(
      "PAYLOAD_TOO_LARGE",
      `${target(site)}: the call is larger than the ${limit}-byte limit of the node protocol`,
      site,
    );
  },
  unauthorizedBy(hostname: string): NetworkRequestError {
    return new NetworkRequestError(
      "UNAUTHORIZED",
      `${hostname} refused this node's credentials; check that both use the same secret`,
      { host: hostname },
    );
  },
  network(site: CallSite, why: string): NetworkRequestError {
    return new NetworkRequestError("NETWORK", `${target(site)}: ${why}`, site);
  },
  wouldDeadlock(site: CallSite, why: string): RequestError {
    return new RequestError("WOULD_DEADLOCK", `${target(site)}: ${why}`, site);
  },
} as const;

// ---------------------------------------------------------------------------
// Errors that stay inside the runtime. Each is caught where it is expected and becomes one of
// the errors above or an HTTP answer, so none needs an `AioError` code of its own.

/** Why arguments were refused; the dispatcher turns it into an `INVALID_ARGUMENTS` error. */
export class ArgumentProblem extends Error {}

/** A blocking call got no answer in time; whoever made it reports a `TIMEOUT`. */
export class BlockingTimeout extends Error {}

/** Why a body was refused; answered with 400 (or 413 for size). */
export class WireProblem extends Error {
  constructor(
    readonly code: RequestErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * A call that never reached the node it was sent to, over the channel or as a blocking call:
 * it did not run there, so the router may try another node.
 */
export class NotDelivered extends Error {
  constructor(
    message: string,
    /** Nothing listens at the node's address. */
    readonly refused = false,
  ) {
    super(message);
  }
}

/** Thrown by the body parser for a body that is not the one that was signed. */
export class Unauthorized extends Error {
  readonly statusCode = 401;
}

// ---------------------------------------------------------------------------
// Errors of the command line, reported to the person at the terminal.

/** A command's failure: reported as `CODE: message`, and the command exits with 1. */
export class CliError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** A wrong command line: reported like commander's own errors, exit code 2. */
export class UsageError extends Error {}

/** A mistyped command in `aio console`: reported as `USAGE: message`, and the console goes on. */
export class ConsoleError extends Error {
  readonly code = "USAGE";
}
