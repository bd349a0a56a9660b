/**
 * Hot reload: watches plugin folders (with chokidar) and reports a change once the files have
 * been quiet for a moment, so an editor's save of several files is one reload.
 */
import type { FSWatcher } from "chokidar";

const QUIET_MS = 150;

/** Dotfiles, node_modules and editor swap files are not the plugin's code. */
function ignored(path: string): boolean {
  return /(^|[/\\])(\.|node_modules([/\\]|$))/.test(path) || /(~|\.sw[px])$/.test(path);
}

export class PluginWatcher {
  readonly #watchers = new Map<
    string,
    { watcher: FSWatcher; timer?: ReturnType<typeof setTimeout> }
  >();
  readonly #starting = new Set<Promise<void>>();

  /** Resolves once every watch asked for so far is in place. */
  async ready(): Promise<void> {
    await Promise.all(this.#starting);
  }

  /** Calls `changed` after files under `dir` change; a second watch of `name` is ignored. */
  watch(name: string, dir: string, changed: () => void): Promise<void> {
    const starting = this.#watch(name, dir, changed);
    this.#starting.add(starting);
    return starting.finally(() => this.#starting.delete(starting));
  }

  async #watch(name: string, dir: string, changed: () => void): Promise<void> {
    if (this.#watchers.has(name)) return;
    const { watch } = await import("chokidar");
    const entry: { watcher: FSWatcher; timer?: ReturnType<typeof setTimeout> } = {
      watcher: watch(dir, { ignoreInitial: true, ignored }),
    };
    this.#watchers.set(name, entry);
    entry.watcher.on("all", () => {
      if (entry.timer) clearTimeout(entry.timer);
      entry.timer = setTimeout(changed, QUIET_MS);
    });
    await new Promise<void>((resolve) => entry.watcher.once("ready", () => resolve()));
  }

  async unwatch(name: string): Promise<void> {
    const entry = this.#watchers.get(name);
    if (!entry) return;
    this.#watchers.delete(name);
    if (entry.timer) clearTimeout(entry.timer);
    await entry.watcher.close();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#watchers.keys()].map((name) => this.unwatch(name)));
  }
}
