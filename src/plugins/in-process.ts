/** A plugin whose instance lives in the core's own thread: calls are plain method calls. */

import { formatProblem } from "../config/load.js";
import type { PluginEntry, PluginManifest } from "../config/types.js";
import { internalize, kindOf, type LoadedEndpoint, loadedEndpoint } from "../core/endpoint.js";
import type { PluginHost, PluginIdentity } from "../core/ports.js";
import type { CallInfo } from "../core/types.js";
import { ConfigError } from "../errors.js";
import { importPluginClass } from "./loader.js";
import { constructWithContext, type Plugin, type PluginContext } from "./plugin.js";

type Method = (...args: unknown[]) => unknown;

interface BoundEndpoint extends LoadedEndpoint {
  readonly method: Method;
}

export class InProcessHost implements PluginHost {
  readonly isolation = "none";
  readonly #entry: PluginEntry;
  readonly manifest: PluginManifest;
  readonly #context: PluginContext;
  readonly #moduleVersion: number;
  #instance: Plugin | undefined;
  #current: CallInfo | undefined;
  #endpoints = new Map<string, BoundEndpoint>();

  constructor(
    entry: PluginEntry,
    manifest: PluginManifest,
    context: PluginContext,
    moduleVersion: number,
  ) {
    this.#entry = entry;
    this.manifest = manifest;
    this.#context = context;
    this.#moduleVersion = moduleVersion;
  }

  get endpoints(): ReadonlyMap<string, LoadedEndpoint> {
    return this.#endpoints;
  }

  async load(): Promise<void> {
    const { pluginClass } = await importPluginClass(
      this.#entry.path,
      this.#entry.name,
      this.#moduleVersion,
    );
    const instance = constructWithContext(this.#context, () => new pluginClass());
    this.#instance = instance;
    this.#bindEndpoints(instance);
    await instance.onLoad(this.#context.arguments);
  }

  #bindEndpoints(instance: Plugin): void {
    const methods = instance as unknown as Record<string, unknown>;
    this.manifest.endpoints.forEach((declared, index) => {
      const method = methods[declared.internal_name];
      if (typeof method !== "function") {
        const where = {
          file: this.manifest.file,
          line: declared.line,
          key: `endpoints[${index}].internal_name`,
        };
        throw new ConfigError(
          "PLUGIN_LOAD_FAILED",
          formatProblem({
            ...where,
            message: `${this.#entry.name} has no method "${declared.internal_name}"`,
          }),
          where,
        );
      }
      this.#endpoints.set(internalize(declared.access_name), {
        ...loadedEndpoint(declared, kindOf(method as Method)),
        method: method as Method,
      });
    });
  }

  #plugin(): Plugin {
    if (!this.#instance) throw new Error(`Plugin "${this.#entry.name}" is not loaded`);
    return this.#instance;
  }

  enable(): Promise<void> {
    return Promise.resolve(this.#plugin().onEnable());
  }

  disable(): Promise<void> {
    return Promise.resolve(this.#plugin().onDisable());
  }

  async dispose(): Promise<void> {
    this.#instance = undefined;
    this.#endpoints.clear();
  }

  identity(): PluginIdentity {
    const plugin = this.#instance;
    return {
      uuid: this.#context.uuid,
      version: String(plugin?.version ?? this.manifest.version),
      description: String(plugin?.description ?? this.manifest.description),
      remote: Boolean(plugin?.remote ?? this.manifest.remote),
    };
  }

  invokeBlocking(endpoint: LoadedEndpoint, args: unknown[], call: CallInfo): unknown {
    return this.invoke(endpoint, args, call);
  }

  openStreamBlocking(
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: CallInfo,
  ): Iterator<unknown, unknown, undefined> {
    return this.openStream(endpoint, args, call) as Iterator<unknown, unknown, undefined>;
  }

  /** The call whose code is running synchronously in this plugin now, for `currentCall`. */
  get currentCall(): CallInfo | undefined {
    return this.#current;
  }

  invoke(endpoint: LoadedEndpoint, args: unknown[], call: CallInfo): unknown {
    const previous = this.#current;
    this.#current = call;
    try {
      return (endpoint as BoundEndpoint).method.apply(this.#instance, args);
    } finally {
      this.#current = previous;
    }
  }

  openStream(
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: CallInfo,
  ): Iterator<unknown, unknown, undefined> | AsyncIterator<unknown, unknown, undefined> {
    const source = this.invoke(endpoint, args, call) as Iterator<unknown, unknown, undefined> &
      AsyncIterator<unknown, unknown, undefined>;
    // A generator's body runs inside next(), not at the call: mark the call there too.
    const step =
      <K extends "next" | "return" | "throw">(key: K) =>
      (value?: unknown) => {
        const previous = this.#current;
        this.#current = call;
        try {
          return (source[key] as (value?: unknown) => unknown).call(source, value);
        } finally {
          this.#current = previous;
        }
      };
    return {
      next: step("next"),
      return: step("return"),
      throw: step("throw"),
    } as Iterator<unknown, unknown, undefined>;
  }
}
