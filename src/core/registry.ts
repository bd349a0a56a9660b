/** What plugins this node has, in which state, and where to find each by name or uuid. */
import type { PluginEntry } from "../config/types.js";
import type { AioError } from "../errors.js";
import { InFlight } from "./call.js";
import { internalize, type LoadedEndpoint } from "./endpoint.js";
import type { PluginHost } from "./ports.js";
import type { PluginInfo, PluginState } from "./types.js";

const NO_ENDPOINTS: ReadonlyMap<string, LoadedEndpoint> = new Map();

/** One plugin of this node, across its whole life: from config entry to unloaded. */
export class PluginSlot {
  readonly name: string;
  entry: PluginEntry;
  state: PluginState = "unloaded";
  host: PluginHost | undefined;
  uuid = "";
  error: AioError | undefined;
  loadTimeMs: number | undefined;
  readonly inFlight = new InFlight();
  /**
   * Set while the plugin is on its way to enabled (start-up, reload): calls wait for it
   * rather than fail, so plugins may call each other whatever order they start in.
   */
  gate: Promise<void> | undefined;
  /** Bumped on each load, so a load after an edit imports the plugin's code afresh. */
  moduleVersion = 0;

  constructor(entry: PluginEntry) {
    this.name = entry.name;
    this.entry = entry;
  }

  get endpoints(): ReadonlyMap<string, LoadedEndpoint> {
    return this.host?.endpoints ?? NO_ENDPOINTS;
  }

  info(): PluginInfo {
    const identity = this.host?.identity();
    const manifest = this.host?.manifest;
    const info: PluginInfo = {
      name: this.name,
      version: identity?.version ?? manifest?.version ?? "",
      uuid: this.uuid,
      state: this.state,
      remote: identity?.remote ?? manifest?.remote ?? false,
      description: identity?.description ?? manifest?.description ?? "",
      path: this.entry.path,
      isolation: this.host?.isolation ?? this.entry.isolation ?? manifest?.isolation ?? "none",
    };
    if (this.error) {
      info.error = this.error.message;
      info.errorCode = this.error.code;
    }
    if (this.loadTimeMs !== undefined) info.loadTimeMs = this.loadTimeMs;
    return info;
  }
}

export class PluginRegistry {
  readonly #byName = new Map<string, PluginSlot>();
  readonly #byUuid = new Map<string, PluginSlot>();
  /** Entries refused before they got a slot, such as a second plugin with a taken name. */
  readonly #refused: PluginInfo[] = [];

  get(name: string): PluginSlot | undefined {
    return this.#byName.get(name);
  }

  byUuid(uuid: string): PluginSlot | undefined {
    return this.#byUuid.get(uuid);
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  add(slot: PluginSlot): void {
    this.#byName.set(internalize(slot.name), slot);
  }

  /** Forgets a plugin: it is no longer listed, and calls to it find no plugin. */
  remove(slot: PluginSlot): void {
    if (this.#byName.get(internalize(slot.name)) === slot)
      this.#byName.delete(internalize(slot.name));
    if (slot.uuid && this.#byUuid.get(slot.uuid) === slot) this.#byUuid.delete(slot.uuid);
  }

  setUuid(slot: PluginSlot, uuid: string): void {
    if (slot.uuid) this.#byUuid.delete(slot.uuid);
    slot.uuid = uuid;
    if (uuid) this.#byUuid.set(uuid, slot);
  }

  refuse(info: PluginInfo): void {
    this.#refused.push(info);
  }

  slots(): PluginSlot[] {
    return [...this.#byName.values()];
  }

  list(): PluginInfo[] {
    return [...this.slots().map((slot) => slot.info()), ...this.#refused];
  }
}
