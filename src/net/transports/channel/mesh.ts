/**
 * The channel's mesh (see ../../mesh.ts): nodes are found by the discoverers (discoverers/:
 * `node_ips`, the nodes each one passes on in its `/info` answers, mDNS), each address asked
 * for its `/info`; watched with UDP heartbeats answered by a helper thread; and called over the
 * WebSocket channel (dial.ts).
 *
 * A node is known by its instance id, random per run: a new instance at the address of an old
 * one with the same hostname is that node restarted, and replaces it at once. Nodes that are
 * down, and configured ones not found yet, are probed four times a second, so a peer that starts
 * late or comes back is found in well under a second.
 */
import { setTimeout as delay } from "node:timers/promises";
import type { NetworkingConfig } from "../../../config/types.js";
import { NetworkRequestError } from "../../../errors.js";
import type { Logger } from "../../../log.js";
import { hostForUrl, normalizeAddress, parseNodeAddress } from "../../address.js";
import type { PeerIdentity } from "../../auth.js";
import { NodeConnection } from "../../connection.js";
import { connectionRefused, connectionReset, HttpClient } from "../../http-client.js";
import { MAX_JSON_DEPTH } from "../../limits.js";
import { Membership } from "../../membership.js";
import { infoAnswer, type Mesh, type MeshContext } from "../../mesh.js";
import type { NodeRegistry, RemoteNode } from "../../nodes.js";
import { CHANNEL_PATH } from "../../server.js";
import { HttpBlocking } from "../../sync-remote.js";
import { schemeOf } from "../../tls.js";
import { type InfoAnswer, type InfoRequest, readInfoAnswer } from "../../wire.js";
import { channelDial } from "./dial.js";
import { type Discoverer, discoverersFor, type Found } from "./discoverers/index.js";
import { HeartbeatPinger, HeartbeatResponder } from "./heartbeat.js";

/** How often nodes that are down, and configured ones not found yet, are pinged (ms). */
const PROBE_MS = 250;
/** The first retry over HTTP of a node not found yet; each next one waits twice as long. */
const FIRST_RETRY_MS = 250;
/** How often a refresh that breaks on a kept-alive connection is asked again. */
const RESET_RETRIES = 3;
/** How long a closing node waits for its goodbyes to be heard. */
const GOODBYE_MS = 500;
/** Changes of this node's plugins within this long are announced to the others once. */
const ANNOUNCE_DELAY_MS = 50;

interface Fetched {
  answer: InfoAnswer;
  clockOffsetMs: number;
}

interface Contact {
  /** Another reason to contact the address came up while this attempt ran. */
  again: boolean;
}

/** When to try an address over HTTP next, and how long to wait after that. */
interface Retry {
  at: number;
  wait: number;
}

export class ChannelMesh implements Mesh {
  readonly blocking: HttpBlocking;
  readonly #context: MeshContext;
  readonly #config: NetworkingConfig;
  readonly #logger: Logger;
  readonly #nodes: NodeRegistry;
  readonly #http: HttpClient;
  readonly #pinger: HeartbeatPinger;
  readonly #members: Membership;
  readonly #scheme: { http: string; ws: string };
  #responder: HeartbeatResponder | undefined;
  #discoverers: Discoverer[] = [];
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #probe: ReturnType<typeof setInterval> | undefined;
  #announcement: ReturnType<typeof setTimeout> | undefined;
  readonly #contacts = new Map<string, Contact>();
  readonly #retries = new Map<string, Retry>();
  /** Addresses found to be this node itself. */
  readonly #selfAddresses = new Set<string>();
  #leaving = false;
  #goodbyes: Promise<unknown> | undefined;
  #closed = false;

  constructor(context: MeshContext) {
    this.#context = context;
    this.#config = context.config;
    this.#logger = context.logger;
    this.#nodes = context.nodes;
    this.#scheme = schemeOf(context.tls);
    this.#pinger = new HeartbeatPinger(context.config.secret);
    this.blocking = new HttpBlocking(context.config.secret, context.tls);
    this.#http = new HttpClient({
      connectTimeoutMs: 3000,
      maxDepth: MAX_JSON_DEPTH,
      secret: context.config.secret,
      tls: context.tls,
    });
    this.#members = new Membership({
      hostname: context.hostname,
      transport: "channel",
      logger: context.logger,
      nodes: context.nodes,
      emit: context.emit,
      connect: (node) => this.#connectionTo(node),
      askInfo: (node) => this.#refreshOnce(node),
      stillThere: (node) => this.#stillThere(node),
      version: () => Atomics.load(context.version, 0),
      forgotten: (node) => this.#retries.delete(`${node.address}:${node.port}`),
    });
  }

  async start(loopbackOnly: boolean): Promise<void> {
    const context = this.#context;
    this.#responder = new HeartbeatResponder(
      {
        bind: context.bind,
        port: context.server.port,
        hostname: context.hostname,
        instance: context.instance,
        version: context.version,
        secret: this.#config.secret,
      },
      this.#logger,
    );
    await this.#responder.ready;
    this.#heartbeat = setInterval(() => this.#beat(), this.#config.heartbeat_interval * 1000);
    this.#heartbeat.unref();
    this.#probe = setInterval(() => this.#probeMissing(), PROBE_MS);
    this.#probe.unref();
    this.#discoverers = discoverersFor({
      config: this.#config,
      hostname: context.hostname,
      instance: context.instance,
      port: context.server.port,
      bind: context.bind,
      loopbackOnly,
      logger: this.#logger,
    });
    await Promise.all(this.#discoverers.map((discoverer) => discoverer.start(this.#found)));
  }

  /** What every discoverer hands its addresses to: one not known yet is contacted. */
  readonly #found: Found = (address, port, instance) => {
    const known = instance ? this.#nodes.get(instance) : this.#nodes.byAddress(address, port);
    return known ? Promise.resolve() : this.#contact(address, port);
  };

  /**
   * Marks a change of this node's plugins. The nodes it knows are told at once (they ask for
   * its `/info` again), so a plugin enabled here is callable there without waiting for a beat.
   */
  bumpVersion(): void {
    if (this.#leaving || this.#closed || this.#announcement) return;
    this.#announcement = setTimeout(() => {
      this.#announcement = undefined;
      this.#announce();
    }, ANNOUNCE_DELAY_MS);
    this.#announcement.unref();
  }

  refused(node: RemoteNode): void {
    this.#members.markDown(node, "it refused the connection");
  }

  answerInfo(request: InfoRequest, from: string): InfoAnswer | undefined {
    this.#hearFrom(request, normalizeAddress(from));
    if (!this.#config.direct_discoverable) return undefined;
    const nodes = request.discover_nodes_info
      ? this.#nodes
          .shareable()
          .filter((node) => node.instance !== request.instance)
          .map((node) => ({ hostname: node.hostname, address: node.address, port: node.port }))
      : [];
    const answer = infoAnswer(this.#context, request, nodes);
    if (request.instance) this.#members.shown.set(request.instance, answer.version);
    return answer;
  }

  #infoRequest(extra: Partial<InfoRequest> = {}): InfoRequest {
    return {
      hostname: this.#context.hostname,
      port: this.#context.server.port,
      discover_nodes_info: this.#config.discover_nodes,
      instance: this.#context.instance,
      version: Atomics.load(this.#context.version, 0),
      ...extra,
    };
  }

  /**
   * What an `/info` request says of the node that sent it: that it is up (a known node is heard
   * from; one whose map here is older is asked again; an unknown one is contacted back), or
   * that it is leaving.
   */
  #hearFrom(request: InfoRequest, address: string): void {
    if (!request.instance || request.instance === this.#context.instance || this.#closed) return;
    const known = this.#nodes.get(request.instance);
    if (request.leaving) {
      if (known) this.#members.left(known);
      return;
    }
    if (known) {
      this.#members.heard(known);
      if (request.version !== undefined && request.version !== known.version) {
        void this.#members.refresh(known);
      }
    } else if (
      this.#config.discover_nodes &&
      this.#config.direct_discoverable &&
      request.port > 0
    ) {
      void this.#contact(address, request.port, true);
    }
  }

  #origin(address: string, port: number): string {
    return `${this.#scheme.http}://${hostForUrl(address)}:${port}`;
  }

  /**
   * Asks the node at `address:port` for its `/info`: first, with a secret, who it is this run
   * (its unsigned `GET /ping`), since requests are signed for that. "self" if it is this node;
   * undefined if it is not direct_discoverable.
   */
  async #fetchInfo(address: string, port: number): Promise<Fetched | "self" | undefined> {
    const origin = this.#origin(address, port);
    const timeout = Math.max(1000, this.#config.heartbeat_interval * 1000);
    let identity: PeerIdentity | undefined;
    if (this.#config.secret) {
      identity = await this.#http.identify(origin, timeout);
      if (identity.instance === this.#context.instance) return "self";
    }
    const request = this.#infoRequest();
    const { status, body } = await this.#http.postJson(
      `${origin}/info`,
      request,
      timeout,
      identity,
    );
    if (status === 418) {
      this.#logger.debug(`${address}:${port} is not direct_discoverable`);
      return undefined;
    }
    if (status === 401) {
      throw new NetworkRequestError(
        "UNAUTHORIZED",
        `${address}:${port} requires a secret; set networking.secret (or AIO_SECRET) to the cluster's`,
      );
    }
    if (status !== 200) throw new Error(`${origin}/info answered HTTP ${status}`);
    const answer = readInfoAnswer(body);
    if (answer.instance === this.#context.instance) return "self";
    this.#members.shown.set(answer.instance, request.version ?? 0);
    return { answer, clockOffsetMs: identity?.clockOffsetMs ?? 0 };
  }

  /**
   * Contacts `address:port`: asks its `/info`, adds or refreshes the node, follows the nodes
   * it passes on. One attempt per address at a time. A reason to contact it that comes up
   * meanwhile and says the node is there now (`again`: the node itself asked this one) runs one
   * more attempt if the running one failed. Resolves at once when an attempt is running: nodes
   * pass each other on, and a contact waiting for one that waits for it would never end.
   */
  #contact(address: string, port: number, again = false): Promise<void> {
    const key = `${address}:${port}`;
    if (this.#closed || this.#selfAddresses.has(key)) return Promise.resolve();
    const running = this.#contacts.get(key);
    if (running) {
      running.again ||= again;
      return Promise.resolve();
    }
    const contact: Contact = { again: false };
    this.#contacts.set(key, contact);
    return (async () => {
      try {
        const found = await this.#contactOnce(address, port);
        if (!found && contact.again && !this.#closed) await this.#contactOnce(address, port);
      } finally {
        this.#contacts.delete(key);
      }
    })();
  }

  async #contactOnce(address: string, port: number): Promise<boolean> {
    const key = `${address}:${port}`;
    let fetched: Fetched | "self" | undefined;
    try {
      fetched = await this.#fetchInfo(address, port);
    } catch (error) {
      if (this.#closed) return false;
      // Said once loudly (a wrong secret or certificate must not go unnoticed), then quietly.
      const reason = reasonOf(error);
      const message = `cannot reach ${key}: ${reason}`;
      if (this.#nodes.unreachable.has(key)) this.#logger.debug(message);
      else this.#logger.warn(this.#retried(address, port) ? `${message}; trying again` : message);
      this.#nodes.unreachable.set(key, reason);
      return false;
    }
    this.#nodes.unreachable.delete(key);
    this.#retries.delete(key);
    if (fetched === "self") {
      this.#selfAddresses.add(key);
      return true;
    }
    if (!fetched || this.#closed) return true;
    this.#members.adopt(fetched.answer, fetched.clockOffsetMs, address, port);
    await Promise.all(this.#discoverers.map((d) => d.answered(fetched.answer, this.#found)));
    return true;
  }

  #connectionTo(node: RemoteNode): NodeConnection {
    const url = `${this.#scheme.ws}://${hostForUrl(node.address)}:${node.port}${CHANNEL_PATH}`;
    const liveness = this.#config.liveness_timeout * 1000;
    return new NodeConnection({
      dial: channelDial({
        url,
        hostname: node.hostname,
        maxDepth: MAX_JSON_DEPTH + 2,
        maxPacketBytes: this.#config.max_body_bytes,
        secret: this.#config.secret,
        identity: () => node.identity(),
        tls: this.#context.tls,
        connectTimeoutMs: 3000,
        onRefused: () => this.#members.markDown(node, "it refused the connection"),
        onUnauthorized: () => void this.#members.refresh(node),
      }),
      hostname: node.hostname,
      maxPacketBytes: this.#config.max_body_bytes,
      keepalive: {
        intervalMs: this.#config.heartbeat_interval * 1000,
        silentMs: liveness,
        heard: () => node.silentFor() < liveness,
      },
      onBadMessage: (error) =>
        this.#logger.warn(`closing the channel to ${node.hostname}: ${error.message}`),
      onLeaving: () => this.#members.left(node),
      onSilent: () =>
        this.#members.markDown(
          node,
          `its channel and heartbeats were silent for ${liveness / 1000} s`,
        ),
      // Gone, cut off, or restarted: its `/info` tells which.
      onLost: () => void this.#members.refresh(node),
    });
  }

  /**
   * Whether `node` still answers as itself at its address. Nothing answering there proves it
   * gone; silence may be a cut-off link.
   */
  async #stillThere(node: RemoteNode): Promise<boolean> {
    try {
      const identity = await this.#http.identify(
        this.#origin(node.address, node.port),
        Math.max(1000, this.#config.heartbeat_interval * 1000),
      );
      return identity.instance === node.instance;
    } catch (error) {
      return !connectionRefused(error);
    }
  }

  /** One heartbeat: checks every node that is up, and marks down one silent for too long. */
  #beat(): void {
    if (this.#closed) return;
    const liveness = this.#config.liveness_timeout * 1000;
    for (const node of this.#nodes.all()) {
      if (!node.alive) continue;
      void this.#check(node);
      if (node.silentFor() > liveness) {
        this.#members.markDown(
          node,
          `stopped answering for ${(node.silentFor() / 1000).toFixed(1)} s`,
        );
      }
    }
  }

  /**
   * One node's heartbeat: a UDP ping answered by the node's heartbeat thread, and its
   * `/info` over HTTP when the endpoint map changed, another instance answered, or UDP got no
   * answer.
   */
  async #check(node: RemoteNode): Promise<void> {
    const wait = this.#config.heartbeat_interval * 800;
    const pinged = performance.now();
    const pong = await this.#pinger.ping(node.address, node.port, wait, node.clockOffsetMs);
    if (pong?.instance === node.instance) {
      node.rttMs = performance.now() - pinged;
      this.#members.heard(node);
      if (pong.version === node.version) return;
    }
    await this.#members.refresh(node);
  }

  /**
   * Four times a second: pings the nodes that are down (a restarted one answers as a new instance,
   * one that is back as itself) and the configured addresses not found yet, and asks them over
   * HTTP as well, at first soon and then less and less often, for when UDP does not get through.
   */
  #probeMissing(): void {
    if (this.#closed) return;
    const now = performance.now();
    for (const node of this.#nodes.all()) {
      if (node.alive) continue;
      void this.#pinger.ping(node.address, node.port, PROBE_MS, node.clockOffsetMs).then((pong) => {
        if (pong?.instance === node.instance) this.#members.heard(node);
        else if (pong) void this.#members.refresh(node);
      });
      if (this.#due(`${node.address}:${node.port}`, now)) void this.#members.refresh(node);
    }
    for (const entry of this.#config.node_ips) {
      const { address, port } = parseNodeAddress(entry, this.#config.port);
      const key = `${address}:${port}`;
      if (this.#nodes.byAddress(address, port) || this.#selfAddresses.has(key)) continue;
      void this.#pinger.ping(address, port, PROBE_MS).then((pong) => {
        if (pong && pong.instance !== this.#context.instance) void this.#contact(address, port);
      });
      if (this.#due(key, now)) void this.#contact(address, port);
    }
  }

  /**
   * Whether {@link #probeMissing} will try `address:port` again: a node it knows, or a
   * `node_ips` entry; not an address it only heard of (an /info call-back, mDNS).
   */
  #retried(address: string, port: number): boolean {
    if (this.#nodes.byAddress(address, port)) return true;
    return this.#config.node_ips.some((entry) => {
      const configured = parseNodeAddress(entry, this.#config.port);
      return configured.address === address && configured.port === port;
    });
  }

  /** Whether `key` is due for an attempt over HTTP; if so, the next one waits twice as long. */
  #due(key: string, now: number): boolean {
    const retry = this.#retries.get(key);
    if (!retry) {
      this.#retries.set(key, { at: now + FIRST_RETRY_MS, wait: FIRST_RETRY_MS * 2 });
      return false;
    }
    if (now < retry.at) return false;
    retry.at = now + retry.wait;
    retry.wait = Math.min(retry.wait * 2, this.#config.heartbeat_interval * 1000);
    return true;
  }

  async #refreshOnce(node: RemoteNode, retries = RESET_RETRIES): Promise<void> {
    if (this.#closed) return;
    try {
      const fetched = await this.#fetchInfo(node.address, node.port);
      if (!fetched || fetched === "self" || this.#closed) return;
      this.#retries.delete(`${node.address}:${node.port}`);
      this.#members.adopt(fetched.answer, fetched.clockOffsetMs, node.address, node.port);
    } catch (error) {
      if (connectionRefused(error)) this.#members.markDown(node, "it refused the connection");
      // A kept-alive connection the node closed when it ended: a new one tells more. The pool
      // may hold several such connections, each failing the same way once.
      else if (retries > 0 && connectionReset(error)) await this.#refreshOnce(node, retries - 1);
      else this.#logger.debug(`heartbeat to "${node.hostname}" failed: ${reasonOf(error)}`);
    }
  }

  /** Tells every node that is up and was shown an older map that this one changed. */
  #announce(): void {
    if (this.#closed || this.#leaving) return;
    const version = Atomics.load(this.#context.version, 0);
    for (const node of this.#nodes.all()) {
      if (node.alive && this.#members.shown.get(node.instance) !== version)
        void this.#members.refresh(node);
    }
  }

  /**
   * The first step of closing: tells the other nodes that this one is shutting down, with a
   * goodbye to every node it knows (their channels here are told by the server), so their new
   * calls go to other nodes while the calls in flight here finish.
   */
  leave(): void {
    this.#leaving = true;
    clearTimeout(this.#announcement);
    const goodbyes = this.#nodes
      .all()
      .filter((node) => node.alive)
      .map((node) =>
        this.#http.postJson(
          `${this.#origin(node.address, node.port)}/info`,
          this.#infoRequest({ leaving: true, discover_nodes_info: false }),
          GOODBYE_MS,
          node.identity(),
        ),
      );
    // A node that does not answer in time learns it from its heartbeats instead.
    this.#goodbyes = Promise.race([
      Promise.allSettled(goodbyes),
      delay(GOODBYE_MS, undefined, { ref: false }),
    ]);
  }

  async close(): Promise<void> {
    await this.#goodbyes;
    this.#closed = true;
    this.#members.close();
    clearInterval(this.#heartbeat);
    clearInterval(this.#probe);
    clearTimeout(this.#announcement);
    this.#pinger.close();
    await Promise.all(this.#discoverers.map((discoverer) => discoverer.close()));
    await this.#responder?.close();
    for (const node of this.#nodes.all()) node.connection.close();
    await Promise.all([this.#http.close(), this.blocking.close()]);
  }
}

/** Why an address could not be asked, for the operator and for errors that name it. */
function reasonOf(error: unknown): string {
  if (connectionRefused(error)) return "nothing listens there (connection refused)";
  const message = (error as Error).message ?? String(error);
  return (error as { code?: unknown }).code === "UNAUTHORIZED" &&
    message.includes("refused this node's credentials")
    ? "it refused this node's credentials; check that both nodes use the same secret"
    : message;
}
