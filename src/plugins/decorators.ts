/**
 * Error decorators for plugin methods: `@logErrors` and `@handleErrors(defaultValue)`.
 *
 * They replace the original Python system's eight decorators (log_errors / handle_errors and
 * their async_, gen_ and async_gen_ variants): one decorator works on all four kinds of
 * method, and wraps each in a function of the same kind, because the core picks how to call
 * an endpoint from its kind (`fn.constructor.name`, see `kindOf` in core/endpoint.ts).
 *
 * - plain method: `function` wrapper; if it returns a thenable, a rejection is handled too;
 * - async method: `async function` wrapper;
 * - generator: `function*` wrapper that delegates with `yield*`, so next/throw/return reach
 *   the method's generator and its `finally` runs when the consumer stops early;
 * - async generator: `async function*` wrapper, likewise.
 *
 * Errors are logged to `this.logger.error({ err, method }, message)` when the instance has a
 * logger (a pino logger for a Plugin), else to `console.error`. An error object is logged
 * once, however many decorated methods it passes through.
 *
 * These are TC39 (standard) decorators: TypeScript 5 without `experimentalDecorators`.
 */
import { PluginTypeMismatchError } from "../errors.js";

/** A method as the decorators see it. */
type Method<This, Args extends unknown[], Return> = (this: This, ...args: Args) => Return;

type LooseMethod = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Whether `handleErrors(defaultValue)` can stand in for a method returning `Return`:
 * - a generator or async generator (any iterator) ends instead, with `undefined` as its return
 *   value (`defaultValue` is not yielded, as in the original), so its return type must allow
 *   that;
 * - a method whose result is ignored (`void`, `Promise<void>`) takes any default;
 * - a method returning a promise (or thenable) resolves to the default, so the default must
 *   fit the awaited type;
 * - any other method returns the default itself.
 *
 * A plain (non-async) method declared to return a promise that throws before returning one
 * returns the default as is, not wrapped in a promise.
 */
type DefaultFits<D, Return> = [Return] extends [
  Iterator<unknown, infer R, never> | AsyncIterator<unknown, infer R, never>,
]
  ? undefined extends R
    ? true
    : false
  : // biome-ignore lint/suspicious/noConfusingVoidType: matches methods whose result is ignored
    [void] extends [Awaited<Return>]
    ? true
    : [D] extends [Awaited<Return>]
      ? true
      : false;

/** Makes a decoration whose default does not fit fail to type-check, with a readable hint. */
type CheckDefault<D, Return> =
  DefaultFits<D, Return> extends true
    ? unknown
    : {
        "handleErrors: the default value does not fit the method's return type": D;
      };

/** What `handleErrors(defaultValue)` returns: the decorator itself. */
export type HandleErrorsDecorator<D> = <This, Args extends unknown[], Return>(
  method: Method<This, Args, Return>,
  context: ClassMethodDecoratorContext<This, Method<This, Args, Return>> & CheckDefault<D, Return>,
) => Method<This, Args, Return>;

/**
 * Logs any error the method throws (or rejects with, or throws mid-iteration) and rethrows
 * it. Used bare: `@logErrors`.
 */
export function logErrors<This, Args extends unknown[], Return>(
  method: Method<This, Args, Return>,
  context: ClassMethodDecoratorContext<This, Method<This, Args, Return>>,
): Method<This, Args, Return> {
  checkTarget("@logErrors", method, context);
  return wrap(method as LooseMethod, String(context.name), { rethrow: true }) as Method<
    This,
    Args,
    Return
  >;
}

/**
 * Logs the error and returns `defaultValue` instead: an async method (or a plain one returning
 * a promise) resolves to it. A generator or async generator logs the error and ends quietly
 * (its return value is `undefined`; `defaultValue` is not yielded), as the original did.
 * Used with the default: `@handleErrors(0)`.
 */
export function handleErrors<D>(defaultValue: D): HandleErrorsDecorator<D> {
  // `@handleErrors` without parentheses would replace the method by the decorator itself.
  // biome-ignore lint/complexity/noArguments: only a misuse passes a second argument
  if (arguments.length > 1 && typeof defaultValue === "function") {
    // biome-ignore lint/complexity/noArguments: see above
    const context: unknown = arguments[1];
    throw new PluginTypeMismatchError(
      `@handleErrors needs a default value: write @handleErrors(defaultValue) on ${memberName(context)}, not @handleErrors`,
    );
  }
  return <This, Args extends unknown[], Return>(
    method: Method<This, Args, Return>,
    context: ClassMethodDecoratorContext<This, Method<This, Args, Return>> &
      CheckDefault<D, Return>,
  ): Method<This, Args, Return> => {
    checkTarget("@handleErrors", method, context);
    return wrap(method as LooseMethod, String(context.name), {
      rethrow: false,
      fallback: defaultValue,
    }) as Method<This, Args, Return>;
  };
}

// ---------------------------------------------------------------------------
// Checks at decoration time.

const METHOD_KINDS = "methods (plain, async, generator or async generator)";

const KIND_NAMES: Record<string, string> = {
  getter: "getter",
  setter: "setter",
  field: "field",
  accessor: "auto-accessor",
  class: "class",
};

function memberName(context: unknown): string {
  if (typeof context !== "object" || context === null) return "a method";
  const { kind, name } = context as { kind?: unknown; name?: unknown };
  const what = typeof kind === "string" ? (KIND_NAMES[kind] ?? kind) : "member";
  if (kind === "class") return name === undefined ? "an anonymous class" : `class ${String(name)}`;
  return `${what} "${String(name)}"`;
}

function checkTarget(decorator: string, value: unknown, context: unknown): void {
  if (typeof context !== "object" || context === null || !("kind" in context)) {
    throw new PluginTypeMismatchError(
      `${decorator} was called without a decorator context; apply it to a method with ${decorator === "@logErrors" ? "@logErrors" : "@handleErrors(defaultValue)"}`,
    );
  }
  const { kind, name } = context as { kind: unknown; name?: unknown };
  if (kind !== "method") {
    throw new PluginTypeMismatchError(
      `${decorator} can only decorate ${METHOD_KINDS}, but it was applied to ${memberName(context)}`,
    );
  }
  if (typeof value !== "function") {
    const what = value === null ? "null" : typeof value;
    throw new PluginTypeMismatchError(
      `${decorator} can only decorate ${METHOD_KINDS}, but "${String(name)}" is ${what}, not a function`,
    );
  }
}

// ---------------------------------------------------------------------------
// Wrapping.

interface Handling {
  /** Rethrow after logging (logErrors), or give `fallback` instead (handleErrors). */
  rethrow: boolean;
  fallback?: unknown;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === "object" || typeof value === "function") &&
    value !== null &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

function wrap(method: LooseMethod, name: string, handling: Handling): LooseMethod {
  const { rethrow, fallback } = handling;
  /** Logs, then throws or gives the value that stands in for the result. */
  const fail = (self: unknown, err: unknown): unknown => {
    report(self, name, err);
    if (rethrow) throw err;
    return fallback;
  };

  let wrapper: LooseMethod;
  switch ((method as { constructor?: { name?: unknown } }).constructor?.name) {
    case "AsyncFunction":
      wrapper = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
        try {
          return await method.apply(this, args);
        } catch (err) {
          return fail(this, err);
        }
      };
      break;
    case "GeneratorFunction":
      wrapper = function* (
        this: unknown,
        ...args: unknown[]
      ): Generator<unknown, unknown, unknown> {
        try {
          return yield* method.apply(this, args) as Generator<unknown, unknown, unknown>;
        } catch (err) {
          fail(this, err);
          return undefined; // end the stream quietly
        }
      };
      break;
    case "AsyncGeneratorFunction":
      wrapper = async function* (
        this: unknown,
        ...args: unknown[]
      ): AsyncGenerator<unknown, unknown, unknown> {
        try {
          return yield* method.apply(this, args) as AsyncGenerator<unknown, unknown, unknown>;
        } catch (err) {
          fail(this, err);
          return undefined; // end the stream quietly
        }
      };
      break;
    default:
      wrapper = function (this: unknown, ...args: unknown[]): unknown {
        let result: unknown;
        try {
          result = method.apply(this, args);
        } catch (err) {
          return fail(this, err);
        }
        if (!isThenable(result)) return result;
        return Promise.resolve(result).then(undefined, (err: unknown) => fail(this, err));
      };
  }
  // Keep the method's name and arity for anything that introspects the wrapper.
  Object.defineProperty(wrapper, "name", { value: method.name, configurable: true });
  Object.defineProperty(wrapper, "length", { value: method.length, configurable: true });
  return wrapper;
}

// ---------------------------------------------------------------------------
// Logging.

/** Error objects already logged: nested decorated calls log an error once. */
const logged = new WeakSet<object>();

interface ErrorLogger {
  error(obj: { err: unknown; method: string }, msg: string): void;
}

function loggerOf(self: unknown): ErrorLogger | undefined {
  if ((typeof self !== "object" && typeof self !== "function") || self === null) return undefined;
  try {
    // A Plugin's `logger` getter throws when the plugin was not created by a core.
    const logger: unknown = (self as { logger?: unknown }).logger;
    if ((typeof logger === "object" || typeof logger === "function") && logger !== null) {
      if (typeof (logger as { error?: unknown }).error === "function") {
        return logger as ErrorLogger;
      }
    }
  } catch {
    // No usable logger: fall back to the console.
  }
  return undefined;
}

function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  try {
    return String(err);
  } catch {
    return Object.prototype.toString.call(err);
  }
}

function report(self: unknown, name: string, err: unknown): void {
  if ((typeof err === "object" || typeof err === "function") && err !== null) {
    if (logged.has(err)) return;
    logged.add(err);
  }
  const message = `${name} failed: ${describeError(err)}`;
  const logger = loggerOf(self);
  if (logger !== undefined) {
    try {
      logger.error({ err, method: name }, message);
      return;
    } catch {
      // A broken logger must not hide the error: use the console instead.
    }
  }
  console.error(message, err);
}
