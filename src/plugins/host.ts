/**
 * Where a plugin's code runs. The core manages every plugin through this interface, so the
 * lifecycle, routing and call tracking are the same whether the instance lives in this
 * thread or elsewhere.
 */
import type { Isolation, PluginManifest } from "../config/types.js";
import type { LoadedEndpoint } from "../core/endpoint.js";
import type { CallInfo } from "../core/types.js";

/** What the plugin reports about itself once loaded (it may change these in `onLoad`). */
export interface PluginIdentity {
  uuid: string;
  version: string;
  description: string;
  remote: boolean;
}

export interface PluginHost {
  /** Where the plugin's code runs. */
  readonly isolation: Isolation;
  /** Imports the module, constructs the plugin and runs `onLoad`. */
  load(): Promise<void>;
  enable(): Promise<void>;
  disable(): Promise<void>;
  /** Releases what the host holds; the plugin is never called again. */
  dispose(): Promise<void>;

  readonly manifest: PluginManifest;
  identity(): PluginIdentity;
  readonly endpoints: ReadonlyMap<string, LoadedEndpoint>;

  /**
   * Starts a function endpoint. Returns its value, or a promise of it. May throw what the
   * plugin throws.
   */
  invoke(endpoint: LoadedEndpoint, args: unknown[], call: CallInfo): unknown;
  /** Starts a generator endpoint and returns its iterator. */
  openStream(
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: CallInfo,
  ): Iterator<unknown, unknown, undefined> | AsyncIterator<unknown, unknown, undefined>;
  /**
   * Runs a plain function endpoint to completion, blocking the calling thread until it
   * returns (`executeSync`).
   */
  invokeBlocking(endpoint: LoadedEndpoint, args: unknown[], call: CallInfo): unknown;
  /** Starts a sync generator endpoint whose every step blocks until it yields. */
  openStreamBlocking(
    endpoint: LoadedEndpoint,
    args: unknown[],
    call: CallInfo,
  ): Iterator<unknown, unknown, undefined>;
}
