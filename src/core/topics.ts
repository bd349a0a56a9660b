/**
 * Topics on this node: who subscribes to what (endpoints by their manifest's `topic:`, code by
 * `subscribe`), handing a publish to each, and choosing the one handler that answers a
 * request. Other nodes are reached through the `RemoteTopics` port.
 *
 * Endpoint subscribers are read from the registry at each publish, so a plugin's endpoint
 * subscriptions end and come back with its state without bookkeeping; only code subscriptions
 * are held here, and they end with the plugin instance that made them.
 */

import { type CallMode, callErrors, RequestError, TOPIC_PLUGIN } from "../errors.js";
import { followed } from "../follow.js";
import type { Logger } from "../log.js";
import { patternProblem, type TopicMatcher, topicMatcher, topicProblem } from "../topic-names.js";
import { openToNodes, refusal } from "./access.js";
import {
  APPLICATION,
  Call,
  type Caller,
  type CallOptions,
  InFlight,
  trackPromise,
} from "./call.js";
import type { Dispatcher } from "./dispatcher.js";
import { isStreamKind, type LoadedEndpoint } from "./endpoint.js";
import type { RemoteTopics } from "./ports.js";
import type { PluginRegistry, PluginSlot } from "./registry.js";
import type {
  Subscription,
  SubscriptionInfo,
  TaggedEndpoint,
  TopicHandler,
  TopicInfo,
  TopicMessage,
  TopicOptions,
} from "./types.js";

/**
 * Deliveries to one subscriber still running, beyond which it is handed nothing more: a
 * subscriber that hangs must not fill this node's memory. Delivery is at most once anyway.
 */
const MAX_PENDING_PER_SUBSCRIBER = 1024;

const NO_OPTIONS: TopicOptions = {};

/** Options of a topic request handed to the dispatcher: this node's handler, nowhere else. */
const LOCAL: CallOptions = { host: "local" };

/** Topics whose matching handlers are kept at once; more, and the cache starts over. */
const MAX_CACHED_TOPICS = 4096;

/** Messages a `watch` consumer may fall behind by before the oldest are dropped. */
const WATCH_QUEUE = 1024;

interface CodeSubscription {
  readonly id: string;
  readonly pattern: string;
  readonly matches: TopicMatcher;
  /** The subscribing plugin's name and instance; undefined for the application. */
  readonly plugin: { name: string; uuid: string } | undefined;
  readonly handler: TopicHandler;
}

type Handler =
  | { kind: "endpoint"; slot: PluginSlot; endpoint: LoadedEndpoint }
  | { kind: "code"; subscription: CodeSubscription };

export interface TopicsOptions {
  registry: PluginRegistry;
  dispatcher: Dispatcher;
  hostname: string;
  logger: Logger;
  /** Prefix of the request ids of topic requests, unique per core. */
  idPrefix: string;
  /** What other nodes may reach here changed: they should ask again. */
  changed(): void;
}

export class Topics {
  readonly #options: TopicsOptions;
  readonly #registry: PluginRegistry;
  readonly #subscriptions = new Map<string, CodeSubscription>();
  readonly #matchers = new Map<string, TopicMatcher>();
  readonly #matchingByTopic = new Map<string, Handler[]>();
  readonly #pending = new WeakMap<object, number>();
  /** Deliveries of other nodes' publishes waiting for the end of this turn's I/O, in order. */
  #fromAfar: Array<() => void> = [];
  /** Topic requests answered by the application's own handlers. */
  readonly #inFlight = new InFlight();
  #seq = 0;
  /** Set while networking runs. */
  remote: RemoteTopics | undefined;

  constructor(options: TopicsOptions) {
    this.#options = options;
    this.#registry = options.registry;
  }

  // ------------------------------------------------------------ subscriptions

  /** Subscribes `handler` to `pattern` for the application, or for the plugin instance given. */
  subscribe(
    pattern: string,
    handler: TopicHandler,
    plugin?: { name: string; uuid: string },
  ): Subscription {
    const wrong = patternProblem(pattern);
    if (wrong) throw callErrors.badTopic({ plugin: TOPIC_PLUGIN, method: String(pattern) }, wrong);
    if (typeof handler !== "function") {
      throw callErrors.badTopic(
        { plugin: TOPIC_PLUGIN, method: pattern },
        "subscribe() needs a handler function",
      );
    }
    const id = `${this.#options.idPrefix}s${(++this.#seq).toString(36)}`;
    const subscription: CodeSubscription = {
      id,
      pattern,
      matches: this.#matcher(pattern),
      plugin,
      handler,
    };
    this.#subscriptions.set(id, subscription);
    this.#changed();
    const subscriptions = this.#subscriptions;
    const changed = () => this.#changed();
    return {
      id,
      pattern,
      unsubscribe() {
        if (subscriptions.delete(id)) changed();
      },
    };
  }

  /** Ends every code subscription of a plugin instance (it was unloaded or replaced). */
  endSubscriptionsOf(uuid: string): void {
    let ended = false;
    for (const [id, subscription] of this.#subscriptions) {
      if (subscription.plugin?.uuid !== uuid) continue;
      this.#subscriptions.delete(id);
      ended = true;
    }
    if (ended) this.#changed();
  }

  #changed(): void {
    this.invalidate();
    this.#options.changed();
  }

  #matcher(pattern: string): TopicMatcher {
    let matcher = this.#matchers.get(pattern);
    if (!matcher) {
      matcher = topicMatcher(pattern);
      this.#matchers.set(pattern, matcher);
    }
    return matcher;
  }

  /** Whether the code subscription may receive what `caller` publishes now. */
  #open(subscription: CodeSubscription, caller: Caller): boolean {
    const owner = subscription.plugin;
    if (!owner) return true;
    const slot = this.#registry.get(owner.name);
    if (slot?.state !== "enabled" || slot.uuid !== owner.uuid) return false;
    return caller.kind !== "remote" || slot.host?.identity().remote === true;
  }

  /**
   * The handlers whose pattern matches `topic`, whatever their state and whoever asks: kept
   * per topic until plugins or subscriptions change ({@link invalidate}), so a publish or a
   * request does not read every manifest again. Throws for a malformed topic.
   */
  #matching(topic: string): Handler[] {
    const known = this.#matchingByTopic.get(topic);
    if (known) return known;
    this.#checkTopic(topic);
    const found: Handler[] = [];
    for (const slot of this.#registry.slots()) {
      for (const endpoint of slot.endpoints.values()) {
        const pattern = endpoint.info.topic;
        if (pattern !== undefined && this.#matcher(pattern)(topic)) {
          found.push({ kind: "endpoint", slot, endpoint });
        }
      }
    }
    for (const subscription of this.#subscriptions.values()) {
      if (subscription.matches(topic)) found.push({ kind: "code", subscription });
    }
    if (this.#matchingByTopic.size >= MAX_CACHED_TOPICS) this.#matchingByTopic.clear();
    this.#matchingByTopic.set(topic, found);
    return found;
  }

  /** Plugins or subscriptions changed: which handler matches which topic is read afresh. */
  invalidate(): void {
    this.#matchingByTopic.clear();
  }

  /** Whether `caller` may reach the handler now. */
  #reachable(handler: Handler, caller: Caller): boolean {
    if (handler.kind === "code") return this.#open(handler.subscription, caller);
    // The cache of matching handlers is cleared whenever a plugin's instance changes, so the
    // endpoint is the slot's current one.
    const { slot, endpoint } = handler;
    return (
      slot.state === "enabled" &&
      (caller.kind === "application" ||
        refusal(caller, slot, endpoint, this.#options.hostname) === undefined)
    );
  }

  /** Every handler on this node that `caller` may reach for `topic`, in a stable order. */
  #handlers(caller: Caller, topic: string): Handler[] {
    return this.#matching(topic).filter((handler) => this.#reachable(handler, caller));
  }

  /** The first handler `caller` may reach for `topic` that answers a value, or a stream. */
  #firstHandler(caller: Caller, topic: string, stream: boolean): Handler | undefined {
    for (const handler of this.#matching(topic)) {
      if (handler.kind === "endpoint" && isStreamKind(handler.endpoint.info.kind) !== stream) {
        continue;
      }
      if (this.#reachable(handler, caller)) return handler;
    }
    return undefined;
  }

  /**
   * The patterns that some other node may publish to here: a transport that routes publishes
   * by pattern subscribes to these (each publish is then checked in full on delivery).
   */
  remotePatterns(): string[] {
    const patterns = new Set<string>();
    for (const slot of this.#registry.slots()) {
      if (slot.state !== "enabled") continue;
      for (const endpoint of slot.endpoints.values()) {
        const pattern = endpoint.info.topic;
        if (pattern !== undefined && openToNodes(slot, endpoint)) patterns.add(pattern);
      }
    }
    for (const subscription of this.#subscriptions.values()) {
      if (this.#open(subscription, { kind: "remote", hostname: "" })) {
        patterns.add(subscription.pattern);
      }
    }
    return [...patterns];
  }

  /** The patterns a node named `requester` may publish to here, for its view of this node. */
  patternsOpenTo(requester: string): string[] {
    const caller: Caller = { kind: "remote", hostname: requester };
    const patterns = new Set<string>();
    for (const slot of this.#registry.slots()) {
      if (slot.state !== "enabled") continue;
      for (const endpoint of slot.endpoints.values()) {
        const pattern = endpoint.info.topic;
        if (pattern === undefined) continue;
        if (refusal(caller, slot, endpoint, this.#options.hostname) === undefined) {
          patterns.add(pattern);
        }
      }
    }
    for (const subscription of this.#subscriptions.values()) {
      if (this.#open(subscription, caller)) patterns.add(subscription.pattern);
    }
    return [...patterns];
  }

  // ------------------------------------------------------------ publishing

  #info(caller: Caller, topic: string): TopicInfo {
    return {
      topic,
      publisherHost: caller.kind === "remote" ? caller.hostname : this.#options.hostname,
      publisher:
        caller.kind === "plugin"
          ? caller.name
          : caller.kind === "remote"
            ? (caller.author ?? "application")
            : "application",
    };
  }

  /** Whether `host` lets a publish or request reach this node, and other nodes. */
  #reach(host: string | undefined): { local: boolean; remote: string | false | undefined } {
    if (host === undefined || host === "any") return { local: true, remote: undefined };
    if (host === "local" || host === this.#options.hostname) return { local: true, remote: false };
    if (host === "remote") return { local: false, remote: undefined };
    return { local: false, remote: host };
  }

  /**
   * Hands a publish to every subscriber on this node that `caller` may reach, and returns how
   * many took it. Each delivery starts later, in publish order, so the publisher never waits on
   * a subscriber and one subscriber's failure touches no other: on the next microtask, or, for
   * another node's publish, once this turn's I/O is done, so that the count this node answers
   * with leaves before its subscribers run.
   */
  deliver(caller: Caller, topic: string, args: unknown): number {
    const info = this.#info(caller, topic);
    const runs: Array<() => void> = [];
    for (const handler of this.#handlers(caller, topic)) {
      const key = handler.kind === "endpoint" ? handler.endpoint : handler.subscription;
      const pending = this.#pending.get(key) ?? 0;
      if (pending >= MAX_PENDING_PER_SUBSCRIBER) {
        this.#options.logger.warn(
          `${describe(handler)} has ${pending} deliveries of "${topic}" still running; this one is dropped`,
        );
        continue;
      }
      if (handler.kind === "endpoint") {
        if (isStreamKind(handler.endpoint.info.kind)) continue;
        try {
          handler.endpoint.bind(args);
        } catch (error) {
          this.#options.logger.warn(
            `${describe(handler)} refuses what was published to "${topic}": ${(error as Error).message}`,
          );
          continue;
        }
      }
      runs.push(() => this.#run(handler, key, caller, args, info));
    }
    if (runs.length === 0) return 0;
    if (caller.kind === "remote") {
      if (this.#fromAfar.length === 0) setImmediate(this.#runFromAfar);
      for (const run of runs) this.#fromAfar.push(run);
    } else {
      queueMicrotask(() => {
        for (const run of runs) run();
      });
    }
    return runs.length;
  }

  readonly #runFromAfar = (): void => {
    const runs = this.#fromAfar;
    this.#fromAfar = [];
    for (const run of runs) run();
  };

  #run(handler: Handler, key: object, caller: Caller, args: unknown, info: TopicInfo): void {
    const failed = (error: unknown) => {
      this.#options.logger.error(
        `${describe(handler)} failed on topic "${info.topic}": ${(error as Error)?.message ?? String(error)}`,
      );
    };
    let result: unknown;
    if (handler.kind === "endpoint") {
      result = this.#options.dispatcher.executeAt(
        caller,
        handler.slot,
        handler.endpoint,
        args,
        LOCAL,
      );
    } else {
      try {
        result = handler.subscription.handler(args, info);
      } catch (error) {
        failed(error);
        return;
      }
    }
    if (!(result instanceof Promise)) return;
    this.#pending.set(key, (this.#pending.get(key) ?? 0) + 1);
    result.then(undefined, failed).finally(() => {
      this.#pending.set(key, (this.#pending.get(key) ?? 1) - 1);
    });
  }

  /** `notify`: this node's subscribers and, as `host` allows, every other node's. */
  notify(
    caller: Caller,
    topic: string,
    args: unknown,
    options: TopicOptions | undefined,
  ): Promise<number> {
    let published: { count: number; elsewhere: Promise<number> | undefined };
    try {
      published = this.#publish(caller, topic, args, options);
    } catch (error) {
      return Promise.reject(error);
    }
    const { count, elsewhere } = published;
    if (elsewhere === undefined) return Promise.resolve(count);
    return count === 0 ? elsewhere : elsewhere.then((more) => count + more);
  }

  /**
   * `notifySync`: the same, without waiting. Other nodes are handed the publish in the
   * background; the count is this node's subscribers only.
   */
  notifySync(
    caller: Caller,
    topic: string,
    args: unknown,
    options: TopicOptions | undefined,
  ): number {
    const { count, elsewhere } = this.#publish(caller, topic, args, options);
    elsewhere?.catch((error: unknown) =>
      this.#options.logger.warn(
        `publishing "${topic}" to other nodes failed: ${(error as Error).message}`,
      ),
    );
    return count;
  }

  /**
   * Hands a publish to this node's subscribers and, as `host` allows, to the other nodes:
   * how many took it here, and what the others will say. Throws for a malformed topic.
   */
  #publish(
    caller: Caller,
    topic: string,
    args: unknown,
    options: TopicOptions | undefined,
  ): { count: number; elsewhere: Promise<number> | undefined } {
    const reach = this.#reach(options?.host);
    // Delivering checks the topic; without local delivery it is checked here.
    if (!reach.local) this.#checkTopic(topic);
    const count = reach.local ? this.deliver(caller, topic, args) : 0;
    const remote = this.remote;
    if (reach.remote === false || !remote) return { count, elsewhere: undefined };
    const elsewhere = remote.notify(
      caller,
      topic,
      args,
      options === undefined ? NO_OPTIONS : { ...options, host: reach.remote ?? options.host },
    );
    return { count, elsewhere };
  }

  #checkTopic(topic: string): void {
    const wrong = topicProblem(topic);
    if (wrong) throw callErrors.badTopic({ plugin: TOPIC_PLUGIN, method: String(topic) }, wrong);
  }

  // ------------------------------------------------------------ requests

  /** A topic request's call; a malformed topic is INVALID_ARGUMENTS naming the request. */
  #call(caller: Caller, topic: string, options: CallOptions | undefined): Call {
    const call = new Call(
      this.#options.idPrefix,
      ++this.#seq,
      TOPIC_PLUGIN,
      topic,
      caller,
      options,
    );
    const wrong = topicProblem(topic);
    if (wrong) throw callErrors.badTopic(call, wrong);
    return call;
  }

  /** The first local handler of the kind asked for, if `host` allows this node. */
  #localHandler(call: Call, stream: boolean): Handler | undefined {
    if (!this.#reach(call.host).local) return undefined;
    return this.#firstHandler(call.caller, call.method, stream);
  }

  #noHandler(call: Call): RequestError {
    const reach = this.#reach(call.host);
    const where =
      reach.remote === false
        ? " on this node"
        : !this.remote
          ? reach.local
            ? " (networking is off, so only this node was searched)"
            : " (networking is off)"
          : reach.local
            ? " on this node or any other"
            : " on other nodes";
    return callErrors.noHandler(call, where);
  }

  /** A topic request answered by an endpoint: the dispatcher's call, on this node only. */
  #viaEndpoint<M extends CallMode>(
    mode: M,
    handler: Handler & { kind: "endpoint" },
    args: unknown,
    call: Call,
    options: CallOptions | undefined,
  ): ReturnType<Dispatcher[M]> {
    return this.#options.dispatcher[mode](
      call.caller,
      handler.slot.name,
      handler.endpoint.info.access_name,
      args,
      { ...options, host: "local", requestId: call.requestId },
    ) as ReturnType<Dispatcher[M]>;
  }

  /** `requestTopic`: one handler answers: this node's first, then another node's. */
  requestTopic(
    caller: Caller,
    topic: string,
    args: unknown,
    options: CallOptions | undefined,
  ): Promise<unknown> {
    // The common case in few steps: a local endpoint answers, and the dispatcher does the rest.
    const host = options?.host;
    if (host === undefined || host === "any" || host === "local") {
      let first: Handler | undefined;
      try {
        first = this.#firstHandler(caller, topic, false);
      } catch (error) {
        // A malformed topic: the path below reports it, naming the request.
        if (!(error instanceof RequestError)) return Promise.reject(error);
      }
      if (first?.kind === "endpoint") {
        return this.#options.dispatcher.executeAt(
          caller,
          first.slot,
          first.endpoint,
          args,
          options === undefined ? LOCAL : { ...options, host: "local" },
        );
      }
    }
    let call: Call;
    try {
      call = this.#call(caller, topic, options);
    } catch (error) {
      return Promise.reject(error);
    }
    const handler = this.#localHandler(call, false);
    if (handler?.kind === "endpoint") {
      return this.#viaEndpoint("execute", handler, args, call, options);
    }
    if (handler?.kind === "code") {
      const info = this.#info(caller, topic);
      let work: Promise<unknown>;
      try {
        work = Promise.resolve(handler.subscription.handler(args, info));
      } catch (error) {
        return Promise.reject(callErrors.pluginThrew(this.#site(call, handler), error));
      }
      return trackPromise(this.#inFlightOf(handler), call, work, (error) =>
        callErrors.pluginThrew(this.#site(call, handler), error),
      );
    }
    const remote = this.remote;
    const reach = this.#reach(call.host);
    if (reach.remote !== false && remote?.canAnswer(topic, reach.remote)) {
      return remote.requestTopic(call, args);
    }
    return Promise.reject(this.#noHandler(call));
  }

  /** `requestTopicStream`: one handler's stream, chosen as for `requestTopic`. */
  async *requestTopicStream(
    caller: Caller,
    topic: string,
    args: unknown,
    options: CallOptions | undefined,
  ): AsyncGenerator<unknown, void, undefined> {
    const call = this.#call(caller, topic, options);
    const handler = this.#localHandler(call, true);
    if (handler?.kind === "endpoint") {
      yield* this.#viaEndpoint("executeStream", handler, args, call, options);
      return;
    }
    if (handler?.kind === "code") {
      // A code handler answers a stream request with what it returns: its items if that is
      // iterable (a generator, an array), else the one value.
      let result: unknown;
      try {
        result = await handler.subscription.handler(args, this.#info(caller, topic));
      } catch (error) {
        throw callErrors.pluginThrew(this.#site(call, handler), error);
      }
      if (isIterable(result)) yield* result;
      else yield result;
      return;
    }
    const remote = this.remote;
    const reach = this.#reach(call.host);
    if (reach.remote !== false && remote?.canAnswer(topic, reach.remote)) {
      yield* remote.requestTopicStream(call, args);
      return;
    }
    throw this.#noHandler(call);
  }

  /** `requestTopicSync`: a local handler that answers without waiting; see `executeSync`. */
  requestTopicSync(
    caller: Caller,
    topic: string,
    args: unknown,
    options: CallOptions | undefined,
  ): unknown {
    const call = this.#call(caller, topic, options);
    const handler = this.#localHandler(call, false);
    if (handler?.kind === "endpoint") {
      return this.#viaEndpoint("executeSync", handler, args, call, options);
    }
    if (handler?.kind === "code") {
      return this.#answerSync(handler, args, call, caller, topic, "requestTopicSync");
    }
    this.#refuseRemoteSync(call);
  }

  /** `requestTopicStreamSync`: a local generator endpoint, pulled step by step. */
  requestTopicStreamSync(
    caller: Caller,
    topic: string,
    args: unknown,
    options: CallOptions | undefined,
  ): Generator<unknown, void, undefined> {
    const call = this.#call(caller, topic, options);
    const handler = this.#localHandler(call, true);
    if (handler?.kind === "endpoint") {
      return this.#viaEndpoint("executeStreamSync", handler, args, call, options);
    }
    if (handler?.kind === "code") {
      const result = this.#answerSync(handler, args, call, caller, topic, "requestTopicStreamSync");
      return (function* () {
        if (isIterable(result) && Symbol.iterator in result) yield* result as Iterable<unknown>;
        else yield result;
      })();
    }
    this.#refuseRemoteSync(call);
  }

  /**
   * A code handler's answer to a blocking topic request: a throw is PLUGIN_ERROR, and a Promise
   * (an async handler) is WOULD_DEADLOCK, since the caller cannot wait for it.
   */
  #answerSync(
    handler: Handler & { kind: "code" },
    args: unknown,
    call: Call,
    caller: Caller,
    topic: string,
    method: "requestTopicSync" | "requestTopicStreamSync",
  ): unknown {
    let result: unknown;
    try {
      result = handler.subscription.handler(args, this.#info(caller, topic));
    } catch (error) {
      throw callErrors.pluginThrew(this.#site(call, handler), error);
    }
    if (result instanceof Promise) {
      result.catch(() => undefined);
      const instead = method === "requestTopicSync" ? "requestTopic" : "requestTopicStream";
      throw callErrors.wouldDeadlock(
        call,
        `its handler returned a Promise, which ${method}() cannot wait for. Use \`await ${instead}()\` instead.`,
      );
    }
    return result;
  }

  /** A blocking topic request reaches only this node's handlers (docs/api.md says why). */
  #refuseRemoteSync(call: Call): never {
    const reach = this.#reach(call.host);
    if (reach.remote !== false && this.remote?.canAnswer(call.method, reach.remote)) {
      throw callErrors.wouldDeadlock(
        call,
        "only another node handles it, and the blocking topic requests reach this node's handlers only. Use `await requestTopic()` instead.",
      );
    }
    throw this.#noHandler(call);
  }

  #site(call: Call, handler: Handler) {
    const plugin =
      handler.kind === "code"
        ? (handler.subscription.plugin?.name ?? "application")
        : handler.slot.name;
    return { requestId: call.requestId, plugin, method: `topic "${call.method}"` };
  }

  #inFlightOf(handler: Handler): InFlight {
    const owner = handler.kind === "code" ? handler.subscription.plugin : undefined;
    return (owner && this.#registry.get(owner.name)?.inFlight) || this.#inFlight;
  }

  /** This node's subscriptions and those other nodes offer it. */
  subscriptions(): SubscriptionInfo[] {
    const hostname = this.#options.hostname;
    const found: SubscriptionInfo[] = [];
    for (const slot of this.#registry.slots()) {
      if (slot.state !== "enabled") continue;
      for (const endpoint of slot.endpoints.values()) {
        const pattern = endpoint.info.topic;
        if (pattern === undefined) continue;
        const subscriber = `${slot.name}.${endpoint.info.access_name}`;
        found.push({ hostname, pattern, subscriber, kind: "endpoint" });
      }
    }
    for (const subscription of this.#subscriptions.values()) {
      if (!this.#open(subscription, APPLICATION)) continue;
      const subscriber = subscription.plugin?.name ?? "application";
      found.push({ hostname, pattern: subscription.pattern, subscriber, kind: "code" });
    }
    if (this.remote) found.push(...this.remote.subscriptions());
    return found;
  }

  /** What is published to `pattern`, from every node, as the application hears it (`messagesOf`). */
  watch(pattern: string): AsyncGenerator<TopicMessage, void, undefined> {
    return messagesOf(
      (handler) => this.subscribe(pattern, handler),
      (dropped) =>
        this.#options.logger.warn(
          `a watcher of "${pattern}" fell behind: ${dropped} message(s) dropped`,
        ),
    );
  }

  // ------------------------------------------------------------ tags

  /**
   * Endpoints carrying `tag` that `caller` may call, on this node and every alive one; every
   * endpoint it may call without a tag.
   */
  findEndpointsByTag(caller: Caller, tag: string | undefined): TaggedEndpoint[] {
    const found: TaggedEndpoint[] = [];
    for (const slot of this.#registry.slots()) {
      if (slot.state !== "enabled") continue;
      for (const endpoint of slot.endpoints.values()) {
        if (tag !== undefined && !endpoint.info.tags.includes(tag)) continue;
        if (refusal(caller, slot, endpoint, this.#options.hostname) !== undefined) continue;
        found.push({
          hostname: this.#options.hostname,
          plugin: slot.name,
          pluginUuid: slot.uuid,
          endpoint: structuredClone(endpoint.info),
        });
      }
    }
    if (this.remote) found.push(...this.remote.endpointsByTag(caller, tag));
    return found;
  }
}

function describe(handler: Handler): string {
  if (handler.kind === "endpoint") {
    return `${handler.slot.name}.${handler.endpoint.info.access_name}`;
  }
  const owner = handler.subscription.plugin?.name ?? "the application";
  return `${owner}'s subscription ${handler.subscription.id} to "${handler.subscription.pattern}"`;
}

function isIterable(value: unknown): value is Iterable<unknown> | AsyncIterable<unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    (Symbol.iterator in value || Symbol.asyncIterator in value)
  );
}

/**
 * A subscription as an async generator: each publish, until the consumer stops (which ends the
 * subscription). It subscribes at once, not at the first `next()`, so nothing published after
 * this returns is missed. A consumer that falls {@link WATCH_QUEUE} messages behind loses the
 * oldest; `dropped` is told how many before the next one it gets.
 */
export function messagesOf(
  subscribe: (handler: TopicHandler) => Subscription,
  dropped: (count: number) => void,
): AsyncGenerator<TopicMessage, void, undefined> {
  return followed<TopicMessage>(
    (push) => {
      const subscription = subscribe((args, info) => push({ ...info, args }));
      return () => subscription.unsubscribe();
    },
    dropped,
    WATCH_QUEUE,
  );
}
