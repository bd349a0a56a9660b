/**
 * Typed calls. `aio types` writes a declaration file that fills `AioEndpoints` by module
 * augmentation; `execute` and its kin then accept only the plugins, endpoints and arguments it
 * lists, and give results their types. Without that file every name is a string, `args`
 * anything, and results `unknown` (or what the caller names, as `execute<number>(…)`).
 */
import type { ExecuteOptions } from "./types.js";

/**
 * Plugin name → endpoint access name → `{ args, result, required }`: the forms `args` may take
 * (named, positional, the first argument alone), what a call resolves to (a stream's item
 * type), and whether `args` must be given. Filled by the file `aio types` writes.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by the declarations `aio types` writes.
export interface AioEndpoints {}

type Known = keyof AioEndpoints extends never ? false : true;

/** The plugins `AioEndpoints` lists; none without the declarations. */
export type KnownPlugin = Extract<keyof AioEndpoints, string>;

/** Any plugin name, while there are no declarations; none once there are. */
export type UntypedPlugin = Known extends true ? never : string;

/** A plugin name: those `AioEndpoints` lists, or any string without it. */
export type PluginName = Known extends true ? KnownPlugin : string;

/** An endpoint of plugin `P`: those `AioEndpoints` lists for it, or any string. */
export type EndpointName<P extends string> = P extends keyof AioEndpoints
  ? Extract<keyof AioEndpoints[P], string>
  : string;

type Signature<P, M> = P extends keyof AioEndpoints
  ? M extends keyof AioEndpoints[P]
    ? AioEndpoints[P][M]
    : never
  : never;

/** What follows plugin and method in a call: `args` (required where the endpoint needs some), then options. */
export type CallRest<P extends string, M extends string> = [Signature<P, M>] extends [never]
  ? [args?: unknown, options?: ExecuteOptions]
  : Signature<P, M> extends { args: infer A; required: true }
    ? [args: A, options?: ExecuteOptions]
    : Signature<P, M> extends { args: infer A }
      ? [args?: A, options?: ExecuteOptions]
      : [args?: unknown, options?: ExecuteOptions];

/**
 * What a call resolves to (a stream: its items): `T` when the caller names it, else the declared
 * result. `T` is never inferred from where the result goes (`const s: string = await
 * execute(…)` must not make the result a string): TypeScript 5.4's `NoInfer`.
 */
export type CallResult<T, P extends string, M extends string> =
  unknown extends NoInfer<T>
    ? [Signature<P, M>] extends [never]
      ? unknown
      : Signature<P, M> extends { result: infer R }
        ? R
        : unknown
    : NoInfer<T>;

/**
 * The result type of a plugin method, as the declarations `aio types` writes name it: a
 * generator's item type, a promise's value, else what it returns.
 */
export type ResultOfMethod<F> = F extends (...args: never[]) => infer R
  ? R extends AsyncGenerator<infer Y, unknown, unknown>
    ? Y
    : R extends Generator<infer Y, unknown, unknown>
      ? Y
      : Awaited<R>
  : unknown;

/** The result type of method `K` of plugin class `C` (see `ResultOfMethod`); unknown if it has none. */
export type ResultOfMember<C, K extends string> = K extends keyof C
  ? ResultOfMethod<C[K]>
  : unknown;
