/**
 * Endpoints: what a manifest declares, what kind of function serves it, and how a call's
 * arguments become the positional list the function receives.
 *
 * Binding and type checks are compiled once per endpoint when the plugin loads, so a call
 * pays for a few comparisons, never for reading the manifest again.
 *
 * A core concept: the dispatcher binds and checks every call with it, whichever host runs the
 * plugin, and the network describes endpoints to other nodes with it.
 */
import { isPlainObject, TYPE_CHECKS } from "../config/argument-types.js";
import type { ArgumentType, ManifestArgument, ManifestEndpoint } from "../config/types.js";
import { ArgumentProblem } from "../errors.js";
import type { EndpointStats } from "./metrics.js";

/** How a function behaves when called: which execute method consumes it. */
export type EndpointKind = "function" | "async function" | "generator" | "async generator";

/** An endpoint as the manifest declares it, plus the kind of the method behind it. */
export interface EndpointInfo {
  access_name: string;
  internal_name: string;
  description: string;
  tags: string[];
  /** The subscription pattern from the manifest's `topic:`, if any. */
  topic?: string;
  /** The result's type from the manifest's `returns:`, if any. */
  returns?: ArgumentType;
  remote: boolean;
  accessible_by_other_plugins: boolean;
  arguments: ManifestArgument[];
  kind: EndpointKind;
}

export function kindOf(fn: (...args: never[]) => unknown): EndpointKind {
  switch (fn.constructor.name) {
    case "AsyncFunction":
      return "async function";
    case "GeneratorFunction":
      return "generator";
    case "AsyncGeneratorFunction":
      return "async generator";
    default:
      return "function";
  }
}

export function isStreamKind(kind: EndpointKind): boolean {
  return kind === "generator" || kind === "async generator";
}

/** Turns a call's `args` into positional arguments, or throws an {@link ArgumentProblem}. */
export type ArgumentBinder = (args: unknown) => unknown[];

/** An endpoint ready to be called: its declaration, kind, and compiled argument binder. */
export interface LoadedEndpoint {
  readonly info: EndpointInfo;
  readonly bind: ArgumentBinder;
  /** Its counts for `/metrics`, for this node's callers and for other nodes; set on first use. */
  servedLocal: EndpointStats | undefined;
  servedRemote: EndpointStats | undefined;
}

/** An endpoint of a plugin instance: its declaration, its kind and its compiled binder. */
export function loadedEndpoint(declared: ManifestEndpoint, kind: EndpointKind): LoadedEndpoint {
  return {
    info: endpointInfo(declared, kind),
    bind: compileBinder(declared),
    servedLocal: undefined,
    servedRemote: undefined,
  };
}

type TypeCheck = (value: unknown) => boolean;

/**
 * The same string, internalized. Names read from YAML are slices of the file's text, and a
 * Map lookup with such a key compares it character by character; an internalized key
 * compares by identity. Used for every name the call path looks up.
 */
export function internalize(name: string): string {
  return Object.keys({ [name]: 0 })[0] as string;
}

/** A short, safe rendering of a value for error messages. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `array of ${value.length}`;
  switch (typeof value) {
    case "string": {
      const text = value.length > 40 ? `${value.slice(0, 40)}…` : value;
      return `string ${JSON.stringify(text)}`;
    }
    case "number":
      return Number.isInteger(value) ? `int ${value}` : `float ${value}`;
    case "object":
      return isPlainObject(value) ? "object" : `${value.constructor?.name ?? "object"} instance`;
    default:
      return typeof value;
  }
}

function cloneDefault(value: unknown): () => unknown {
  if (typeof value !== "object" || value === null) return () => value;
  // A default object is copied per call so one call's mutation cannot leak into the next.
  return () => structuredClone(value);
}

interface CompiledArgument {
  name: string;
  type: ArgumentType;
  check: TypeCheck | undefined;
  required: boolean;
  makeDefault: (() => unknown) | undefined;
}

/**
 * Compiles the binder for one endpoint:
 * - an array gives positional arguments (`[[1, 2]]` passes one array);
 * - a plain object gives named arguments placed by the declared names (an unknown name is an
 *   error), or, when nothing is declared, is the one argument;
 * - `undefined` gives no arguments; any other value is the one argument.
 * Then declared types, required arguments and defaults are applied.
 */
export function compileBinder(endpoint: ManifestEndpoint): ArgumentBinder {
  const declared: CompiledArgument[] = endpoint.arguments.map((arg) => ({
    name: arg.name,
    type: arg.type,
    check: TYPE_CHECKS[arg.type],
    required: arg.required,
    makeDefault: "default" in arg ? cloneDefault(arg.default) : undefined,
  }));

  if (declared.length === 0) {
    return (args) => {
      if (args === undefined) return [];
      if (Array.isArray(args)) return args;
      return [args];
    };
  }

  const position = new Map(declared.map((arg, index) => [internalize(arg.name), index]));
  const names = declared.map((arg) => arg.name).join(", ");
  const needsFilling = declared.some((arg) => arg.required || arg.makeDefault || arg.check);
  const declaredNames = [...position.keys()];
  // A declared name that every object inherits (toString, …) needs the own-keys walk.
  const inheritedName = declaredNames.some((name) => name in Object.prototype);

  /** Reads the declared names straight off the object; falls back when it has other keys. */
  function fromObject(named: Record<string, unknown>): unknown[] {
    if (!inheritedName) {
      // Sized up front: an empty array grows to 17 slots at its first element.
      const positional: unknown[] = new Array(declaredNames.length);
      let found = 0;
      for (let i = 0; i < declaredNames.length; i++) {
        const value = named[declaredNames[i] as string];
        if (value !== undefined) {
          positional[i] = value;
          found++;
        }
      }
      // Counted with for…in, which allocates nothing (Object.keys makes an array); an
      // inherited enumerable key only makes the counts differ, and the own-keys walk decides.
      let keys = 0;
      for (const _ in named) keys++;
      if (found === keys) return withoutTrailingHoles(positional);
    }
    return fromOwnKeys(named);
  }

  function fromOwnKeys(named: Record<string, unknown>): unknown[] {
    const positional: unknown[] = [];
    for (const key of Object.keys(named)) {
      const index = position.get(key);
      if (index === undefined) {
        throw new ArgumentProblem(`unknown argument "${key}"; it takes ${names}`);
      }
      positional[index] = named[key];
    }
    return positional;
  }

  function checkAll(positional: unknown[]): unknown[] {
    for (let i = 0; i < declared.length; i++) {
      const arg = declared[i] as CompiledArgument;
      const value = positional[i];
      if (value === undefined) {
        if (arg.required) throw new ArgumentProblem(`missing required argument "${arg.name}"`);
        if (arg.makeDefault) positional[i] = arg.makeDefault();
        continue;
      }
      if (arg.check && !arg.check(value)) {
        throw new ArgumentProblem(
          `argument "${arg.name}" must be ${arg.type}, got ${describeValue(value)}`,
        );
      }
    }
    return withoutTrailingHoles(positional);
  }

  return (args) => {
    let positional: unknown[];
    if (args === undefined) {
      positional = [];
    } else if (Array.isArray(args)) {
      if (args.length > declared.length) {
        throw new ArgumentProblem(
          `takes at most ${declared.length} argument${declared.length === 1 ? "" : "s"} (${names}), got ${args.length}`,
        );
      }
      positional = args.slice();
    } else if (isPlainObject(args)) {
      positional = fromObject(args);
    } else {
      positional = [args];
    }
    return needsFilling ? checkAll(positional) : positional;
  };
}

/** Trailing holes are dropped so the method's own parameter defaults apply to them. */
function withoutTrailingHoles(positional: unknown[]): unknown[] {
  let end = positional.length;
  while (end > 0 && positional[end - 1] === undefined) end--;
  if (end !== positional.length) positional.length = end;
  return positional;
}

export function endpointInfo(endpoint: ManifestEndpoint, kind: EndpointKind): EndpointInfo {
  const info: EndpointInfo = {
    access_name: endpoint.access_name,
    internal_name: endpoint.internal_name,
    description: endpoint.description,
    tags: [...endpoint.tags],
    remote: endpoint.remote,
    accessible_by_other_plugins: endpoint.accessible_by_other_plugins,
    arguments: endpoint.arguments.map((arg) => ({ ...arg })),
    kind,
  };
  if (endpoint.topic !== undefined) info.topic = endpoint.topic;
  if (endpoint.returns !== undefined) info.returns = endpoint.returns;
  return info;
}
