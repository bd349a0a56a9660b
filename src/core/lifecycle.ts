/**
 * Moves plugins through their states: loaded, enabled, disabled, failed, unloaded. Every
 * plugin hook runs under a time limit, so one plugin cannot hold up the others, and calls in
 * flight get a bounded time to finish before their plugin goes away.
 */

import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { loadManifest } from "../config/load.js";
import type { PluginEntry, PluginManifest } from "../config/types.js";
import { AioError, ConfigError, callErrors } from "../errors.js";
import type { Logger } from "../log.js";
import type { PluginHost } from "./ports.js";
import type { PluginRegistry, PluginSlot } from "./registry.js";
import type { PluginInfo } from "./types.js";

export interface LifecycleEvents {
  "plugin:loaded": [info: PluginInfo];
  "plugin:enabled": [info: PluginInfo];
  "plugin:disabled": [info: PluginInfo];
  "plugin:unloaded": [info: PluginInfo];
  "plugin:failed": [info: PluginInfo, error: AioError];
}

export interface LifecycleOptions {
  registry: PluginRegistry;
  /** The instance with this uuid is gone for good: what it registered ends with it. */
  retired?: (uuid: string) => void;
  logger: Logger;
  /** Milliseconds each of onLoad, onEnable and onDisable may take. */
  hookTimeoutMs: number;
  /** Milliseconds calls in flight get before their plugin is unloaded anyway. */
  drainTimeoutMs: number;
  createHost(slot: PluginSlot, manifest: PluginManifest, uuid: string): PluginHost;
  /** The file a plugin's code starts from in its folder `dir`, if there is one. */
  entryFile(dir: string): string | undefined;
  emit<E extends keyof LifecycleEvents>(event: E, ...args: LifecycleEvents[E]): void;
}

/** Resolves or rejects like `work`, or rejects with `onTimeout()` after `ms`. */
function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

export class Lifecycle {
  readonly #options: LifecycleOptions;

  constructor(options: LifecycleOptions) {
    this.#options = options;
  }

  #hook(slot: PluginSlot, hook: string, work: () => Promise<void>): Promise<void> {
    const ms = this.#options.hookTimeoutMs;
    const failed = (why: string, cause?: unknown, thrower = hook) => {
      const { file, line } = whereThrown(cause, slot.entry.path, this.#options.entryFile);
      const at = line === undefined ? file : `${file}:${line}`;
      return new ConfigError(
        "PLUGIN_LOAD_FAILED",
        `Plugin "${slot.name}": ${thrower} ${why} (${at})`,
        { file, line },
        { cause },
      );
    };
    const wrap = (error: unknown) => {
      if (error instanceof ConfigError) return error;
      const thrower = hook === "onLoad" ? loadStageOf(error, slot.entry.path) : hook;
      return failed(`threw ${describe(error)}`, error, thrower);
    };
    let started: Promise<void>;
    try {
      started = work();
    } catch (error) {
      return Promise.reject(wrap(error));
    }
    return withTimeout(started, ms, () => failed(`did not finish within ${ms / 1000} s`)).catch(
      (error: unknown) => {
        throw wrap(error);
      },
    );
  }

  #fail(slot: PluginSlot, error: AioError): AioError {
    slot.state = "failed";
    slot.error = error;
    this.#options.logger.error({ plugin: slot.name, code: error.code }, error.message);
    this.#options.emit("plugin:failed", slot.info(), error);
    return error;
  }

  /** Builds a new instance of the slot's plugin and runs its `onLoad`; does not swap it in. */
  async #build(slot: PluginSlot): Promise<{ host: PluginHost; uuid: string }> {
    const entry: PluginEntry = slot.entry;
    if (!existsSync(entry.path)) {
      throw new ConfigError(
        "PLUGIN_LOAD_FAILED",
        `Plugin "${slot.name}": folder not found: ${entry.path}`,
        { file: entry.path },
      );
    }
    const { manifest, warnings } = loadManifest(entry.path);
    for (const warning of warnings) {
      this.#options.logger.warn(
        { plugin: slot.name },
        `${warning.file ?? ""}:${warning.line ?? ""} ${warning.key}: ${warning.message}`,
      );
    }
    const uuid = randomUUID();
    slot.moduleVersion++;
    const host = this.#options.createHost(slot, manifest, uuid);
    try {
      await this.#hook(slot, "onLoad", () => host.load());
    } catch (error) {
      void host.dispose().catch(() => undefined);
      throw error;
    }
    return { host, uuid };
  }

  /** Loads the plugin; on failure marks it failed and throws the reason. */
  async load(slot: PluginSlot): Promise<void> {
    const started = performance.now();
    try {
      const { host, uuid } = await this.#build(slot);
      slot.host = host;
      this.#options.registry.setUuid(slot, uuid);
      slot.error = undefined;
      slot.state = "loaded";
      slot.loadTimeMs = Math.round((performance.now() - started) * 10) / 10;
      this.#options.logger.debug(
        { plugin: slot.name },
        `Loaded ${slot.name} in ${slot.loadTimeMs} ms`,
      );
      this.#options.emit("plugin:loaded", slot.info());
    } catch (error) {
      throw this.#fail(slot, asAioError(error, slot));
    }
  }

  async enable(slot: PluginSlot): Promise<void> {
    if (slot.state === "enabled") return;
    const host = slot.host;
    if (!host || (slot.state !== "loaded" && slot.state !== "disabled")) {
      throw callErrors.pluginDisabled(
        { plugin: slot.name, method: "onEnable" },
        slot.state,
        slot.error?.message,
      );
    }
    try {
      await this.#hook(slot, "onEnable", () => host.enable());
    } catch (error) {
      throw this.#fail(slot, asAioError(error, slot));
    }
    slot.state = "enabled";
    this.#options.logger.debug({ plugin: slot.name }, `Enabled ${slot.name}`);
    this.#options.emit("plugin:enabled", slot.info());
  }

  /** Refuses new calls, lets calls in flight finish (bounded), then runs `onDisable`. */
  async disable(slot: PluginSlot): Promise<void> {
    if (slot.state !== "enabled") return;
    slot.state = "disabled";
    await slot.inFlight.drain(this.#options.drainTimeoutMs);
    await this.#runDisable(slot);
    this.#options.emit("plugin:disabled", slot.info());
  }

  async #runDisable(slot: PluginSlot): Promise<void> {
    const host = slot.host;
    if (!host) return;
    try {
      await this.#hook(slot, "onDisable", () => host.disable());
    } catch (error) {
      this.#options.logger.warn({ plugin: slot.name }, asAioError(error, slot).message);
    }
  }

  /**
   * Removes the plugin's instance. Calls in flight get the drain time to finish; any still
   * running then fail with `UNLOADED`.
   */
  async unload(slot: PluginSlot): Promise<void> {
    if (slot.state === "unloaded") return;
    const wasEnabled = slot.state === "enabled";
    if (wasEnabled) slot.state = "disabled";
    await this.#retire(slot, slot.host, wasEnabled);
    slot.host = undefined;
    this.#options.registry.setUuid(slot, "");
    slot.state = "unloaded";
    this.#options.emit("plugin:unloaded", slot.info());
  }

  /** Drains calls on an instance being replaced or removed, then disables and disposes it. */
  async #retire(
    slot: PluginSlot,
    host: PluginHost | undefined,
    wasEnabled: boolean,
  ): Promise<void> {
    const left = await slot.inFlight.drain(this.#options.drainTimeoutMs);
    if (left > 0) {
      this.#options.logger.warn(
        { plugin: slot.name },
        `${left} call(s) to ${slot.name} still running after ${this.#options.drainTimeoutMs} ms; failing them with UNLOADED`,
      );
      slot.inFlight.failAll(() => callErrors.unloaded({ plugin: slot.name }));
    }
    if (wasEnabled) {
      await this.#runDisable(slot);
      this.#options.emit("plugin:disabled", { ...slot.info(), state: "disabled" });
    }
    await host?.dispose().catch((error: unknown) => {
      this.#options.logger.warn(
        { plugin: slot.name },
        `disposing ${slot.name} failed: ${describe(error)}`,
      );
    });
    this.#options.retired?.(slot.uuid);
  }

  /**
   * Swaps in a new instance built from the plugin's current code. Calls arriving meanwhile
   * wait; calls in flight finish on the old instance. If the new code fails to load, the old
   * instance keeps serving and the error is thrown.
   */
  async reload(slot: PluginSlot, shouldEnable: boolean): Promise<void> {
    if (slot.state === "unloaded" || slot.state === "failed" || !slot.host) {
      await this.load(slot);
      if (shouldEnable) await this.enable(slot);
      return;
    }
    const started = performance.now();
    let built: { host: PluginHost; uuid: string };
    try {
      built = await this.#build(slot);
    } catch (error) {
      const failure = asAioError(error, slot);
      this.#options.logger.error(
        { plugin: slot.name, code: failure.code },
        `Reload of ${slot.name} failed; the running instance keeps serving: ${failure.message}`,
      );
      throw failure;
    }
    const wasEnabled = slot.state === "enabled";
    let release: () => void = () => undefined;
    slot.gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    try {
      slot.state = "loaded";
      await this.#retire(slot, slot.host, wasEnabled);
      slot.host = built.host;
      this.#options.registry.setUuid(slot, built.uuid);
      slot.loadTimeMs = Math.round((performance.now() - started) * 10) / 10;
      this.#options.emit("plugin:loaded", slot.info());
      if (wasEnabled) await this.enable(slot);
    } finally {
      slot.gate = undefined;
      release();
    }
  }
}

/**
 * The plugin file and line an error was thrown from, read off its stack; else the plugin's
 * entry file (or folder).
 */
function whereThrown(
  error: unknown,
  dir: string,
  entryFile: (dir: string) => string | undefined,
): { file: string; line: number | undefined } {
  const stack = error instanceof Error ? (error.stack ?? "") : "";
  for (const match of stack.matchAll(/(?:file:\/\/)?(\/[^\s():?]+)(?:\?[^\s():]*)?:(\d+):\d+/g)) {
    const file = match[1] as string;
    if (file.startsWith(`${dir}/`)) return { file, line: Number(match[2]) };
  }
  return { file: entryFile(dir) ?? dir, line: undefined };
}

/**
 * Which part of loading a plugin threw, read off the error's stack: loading runs the class's
 * constructor and then `onLoad`, and a user is helped by the name of the one to look at.
 */
function loadStageOf(error: unknown, dir: string): string {
  const stack = error instanceof Error ? (error.stack ?? "") : "";
  for (const frame of stack.split("\n").slice(1)) {
    if (!frame.includes(`${dir}/`)) continue;
    const name = /^\s*at (?:async )?(.*?) \(/.exec(frame)?.[1] ?? "";
    if (name.startsWith("new ")) return `the constructor of ${name.slice(4)}`;
    if (name === "onLoad" || name.endsWith(".onLoad")) return "onLoad";
  }
  return "onLoad";
}

function asAioError(error: unknown, slot: PluginSlot): AioError {
  if (error instanceof AioError) return error;
  return new ConfigError(
    "PLUGIN_LOAD_FAILED",
    `Plugin "${slot.name}": ${describe(error)}`,
    { file: slot.entry.path },
    { cause: error },
  );
}
