/**
 * NetworkManager: this node's presence on the network. It runs the server, finds other nodes
 * (node_ips, `/info` gossip, mDNS), keeps their endpoint maps current, watches their liveness,
 * and gives the dispatcher a router to reach them.
 *
 * A node is known by its instance id, random per run: a new instance at the address of an old
 * one with the same hostname is that node restarted, and replaces it at once. Nodes that are
 * down, and configured ones not found yet, are probed four times a second, so a peer that starts
 * late or comes back is found in well under a second.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import type { NetworkingConfig } from "../config/types.js";
import type { NodeInfo } from "../core/types.js";
import { NetworkRequestError } from "../errors.js";
import type { Logger } from "../log.js";
import {
  bindAddress,
  checkBind,
  checkNatsServers,
  hostForUrl,
  normalizeAddress,
  parseNodeAddress,
} from "./address.js";
import type { PeerIdentity } from "./auth.js";
import { NodeConnection } from "./connection.js";
import { HeartbeatPinger, HeartbeatResponder } from "./heartbeat.js";
import { connectionRefused, connectionReset, HttpClient } from "./http-client.js";
import { MAX_JSON_DEPTH } from "./limits.js";
import { MdnsDiscovery } from "./mdns.js";
import { Membership } from "./membership.js";
import { NodeRegistry, type RemoteNode } from "./nodes.js";
import { RemoteRouter } from "./router.js";
import type { LocalCalls } from "./serve.js";
import { type AdminApi, CHANNEL_PATH, type HasPluginAnswer, NodeServer } from "./server.js";
import { SyncRemote } from "./sync-remote.js";
import { type PeerTls, peerTls, schemeOf, serverTls } from "./tls.js";
import { channelDial } from "./transports/channel/dial.js";
import { NatsMesh } from "./transports/nats/mesh.js";
import {
  type InfoAnswer,
  type InfoRequest,
  readInfoAnswer,
  type WireEndpoint,
  type WireRefusal,
} from "./wire.js";

export interface NetworkOptions {
  config: NetworkingConfig;
  hostname: string;
  logger: Logger;
  calls: LocalCalls;
  /** This node's endpoints as the node `requester` sees them: open to it, or closed and why. */
  localEndpoints(requester: string): { open: WireEndpoint[]; closed: WireRefusal[] };
  hasPlugin(name: string, method: string | undefined, uuid: string | undefined): HasPluginAnswer;
  admin: AdminApi;
  emit(event: "node:up" | "node:down", node: NodeInfo): void;
}

/**
 * Instance ids of the nodes running in this process. A blocking call to one of them would wait
 * for the very thread it blocks, so it is refused with WOULD_DEADLOCK instead.
 */
export const PROCESS_NODES = new Set<string>();

/** How often nodes that are down, and configured ones not found yet, are pinged (ms). */
const PROBE_MS = 250;
/** The first retry over HTTP of a node not found yet; each next one waits twice as long. */
const FIRST_RETRY_MS = 250;
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

export class NetworkManager {
  /** Random per running node; other nodes tell this one apart by it. */
  readonly instance = randomUUID();
  readonly nodes = new NodeRegistry();
  readonly router: RemoteRouter;
  readonly #options: NetworkOptions;
  readonly #config: NetworkingConfig;
  readonly #logger: Logger;
  readonly #http: HttpClient;
  readonly #server: NodeServer;
  readonly #sync: SyncRemote;
  readonly #bind: string;
  /** Whether the node listens on loopback addresses only (known once started). */
  #loopbackOnly = true;
  readonly #configFile: string | undefined;
  /** The endpoint-map version, in shared memory so the heartbeat thread reads it too. */
  readonly #version = new Int32Array(new SharedArrayBuffer(4));
  readonly #pinger: HeartbeatPinger;
  #responder: HeartbeatResponder | undefined;
  #mdns: MdnsDiscovery | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #probe: ReturnType<typeof setInterval> | undefined;
  #announcement: ReturnType<typeof setTimeout> | undefined;
  readonly #contacts = new Map<string, Contact>();
  readonly #retries = new Map<string, Retry>();
  /** Nodes being asked `/info` again. */
  readonly #refreshing = new Map<RemoteNode, { again: boolean }>();
  /** Addresses found to be this node itself. */
  readonly #selfAddresses = new Set<string>();
  readonly #members: Membership;
  /** With `transport: nats`: how nodes are found, watched and called instead of the channel. */
  readonly #nats: NatsMesh | undefined;
  #leaving = false;
  #goodbyes: Promise<unknown> | undefined;
  #closed = false;
  readonly #tls: PeerTls;
  readonly #scheme: { http: string; ws: string };

  constructor(options: NetworkOptions, configFile?: string) {
    this.#options = options;
    this.#config = options.config;
    this.#logger = options.logger;
    this.#bind = bindAddress(options.config, configFile);
    this.#configFile = configFile;
    this.#tls = peerTls(options.config, configFile);
    this.#scheme = schemeOf(this.#tls);
    this.#sync = new SyncRemote(options.config.secret, this.#tls);
    this.#members = new Membership({
      hostname: options.hostname,
      logger: options.logger,
      nodes: this.nodes,
      emit: options.emit,
      connect: (node) => this.#connectionTo(node),
      refresh: (node) => void this.#refresh(node),
      stillThere: (node) => this.#stillThere(node),
      version: () => Atomics.load(this.#version, 0),
      forgotten: (node) => this.#retries.delete(`${node.address}:${node.port}`),
    });
    this.#pinger = new HeartbeatPinger(options.config.secret);
    this.router = new RemoteRouter({
      nodes: this.nodes,
      hostname: options.hostname,
      sync: this.#sync,
      inProcess: PROCESS_NODES,
      scheme: this.#scheme.http,
      refused: (node) => this.#members.markDown(node, "it refused the connection"),
    });
    this.#http = new HttpClient({
      connectTimeoutMs: 3000,
      maxDepth: MAX_JSON_DEPTH,
      secret: options.config.secret,
      tls: this.#tls,
    });
    const tls = serverTls(options.config, configFile);
    this.#server = new NodeServer({
      hostname: options.hostname,
      instance: this.instance,
      secret: options.config.secret,
      ...(tls ? { tls } : {}),
      bind: this.#bind,
      port: options.config.port,
      logger: options.logger,
      calls: options.calls,
      bodyLimit: options.config.max_body_bytes,
      maxCallsPerPeer: options.config.max_calls_per_peer,
      readTimeoutMs: options.config.read_timeout * 1000,
      allowedHosts: options.config.allowed_hosts,
      maxDepth: MAX_JSON_DEPTH,
      info: (request, from) => this.#answerInfo(request, from),
      hasPlugin: options.hasPlugin,
      admin: options.admin,
    });
    this.#nats =
      options.config.transport === "nats"
        ? new NatsMesh({
            settings: options.config.nats,
            hostname: options.hostname,
            instance: this.instance,
            secret: options.config.secret,
            logger: options.logger,
            nodes: this.nodes,
            emit: options.emit,
            accept: (pipe, peer) => this.#server.accept(pipe, peer),
            localEndpoints: options.localEndpoints,
            version: () => Atomics.load(this.#version, 0),
            port: () => this.port,
            tls: this.#tls.enabled,
            autoDiscoverable: options.config.auto_discoverable,
            heartbeatMs: options.config.heartbeat_interval * 1000,
            livenessMs: options.config.liveness_timeout * 1000,
            maxDepth: MAX_JSON_DEPTH,
            maxPacketBytes: options.config.max_body_bytes,
          })
        : undefined;
  }

  /** The port the server listens on (the configured one, or the one the OS chose for 0). */
  get port(): number {
    return this.#server.port;
  }

  get address(): string {
    return `${this.#bind}:${this.#server.port}`;
  }

  /**
   * Marks a change of this node's plugins. The nodes it knows are told at once (they ask for
   * its `/info` again), so a plugin enabled here is callable there without waiting for a beat.
   */
  bumpVersion(): void {
    Atomics.add(this.#version, 0, 1);
    if (this.#nats) {
      this.#nats.bumpVersion();
      return;
    }
    if (this.#leaving || this.#closed || this.#announcement) return;
    this.#announcement = setTimeout(() => {
      this.#announcement = undefined;
      this.#announce();
    }, ANNOUNCE_DELAY_MS);
    this.#announcement.unref();
  }

  async start(): Promise<void> {
    this.#loopbackOnly = await checkBind(this.#config, this.#configFile);
    await checkNatsServers(this.#config, this.#configFile);
    PROCESS_NODES.add(this.instance);
    await this.#server.listen();
    this.#logger.info(`Listening on ${this.#bind}:${this.port} as "${this.#options.hostname}"`);
    if (!this.#config.secret && !this.#loopbackOnly) {
      this.#logger.warn(
        `INSECURE: listening on ${this.#bind} without a secret (allow_insecure: true); anyone who can reach port ${this.port} can run this node's remote plugins`,
      );
    }
    Atomics.store(this.#version, 0, 1);
    // Over NATS, nodes find and watch each other there: none of the channel's discovery runs.
    if (this.#nats) {
      await this.#nats.start();
      return;
    }
    this.#responder = new HeartbeatResponder(
      {
        bind: this.#bind,
        port: this.port,
        hostname: this.#options.hostname,
        instance: this.instance,
        version: this.#version,
        secret: this.#config.secret,
      },
      this.#logger,
    );
    await this.#responder.ready;
    this.#startMdns();
    this.#heartbeat = setInterval(() => this.#beat(), this.#config.heartbeat_interval * 1000);
    this.#heartbeat.unref();
    this.#probe = setInterval(() => this.#probeMissing(), PROBE_MS);
    this.#probe.unref();
    await Promise.all(
      this.#config.node_ips.map((entry) => {
        const { address, port } = parseNodeAddress(entry, this.#config.port);
        return this.#contact(address, port);
      }),
    );
  }

  /**
   * mDNS runs only for a node reachable from the LAN: one bound to loopback has nothing to
   * announce and nobody to find.
   */
  #startMdns(): void {
    const announce = this.#config.direct_discoverable;
    const browse = this.#config.discover_nodes;
    if (this.#loopbackOnly || (!announce && !browse)) return;
    this.#mdns = new MdnsDiscovery({
      hostname: this.#options.hostname,
      instance: this.instance,
      port: this.port,
      bind: this.#bind,
      announce,
      browse,
      logger: this.#logger,
      onFound: (address, port, instance) => {
        const known = instance ? this.nodes.get(instance) : this.nodes.byAddress(address, port);
        if (!known) void this.#contact(address, port);
      },
    });
  }

  #infoRequest(extra: Partial<InfoRequest> = {}): InfoRequest {
    return {
      hostname: this.#options.hostname,
      port: this.port,
      discover_nodes_info: this.#config.discover_nodes,
      instance: this.instance,
      version: Atomics.load(this.#version, 0),
      ...extra,
    };
  }

  #answerInfo(request: InfoRequest, from: string): InfoAnswer | undefined {
    this.#hearFrom(request, normalizeAddress(from));
    if (!this.#config.direct_discoverable) return undefined;
    const { open, closed } = this.#options.localEndpoints(request.hostname);
    const version = Atomics.load(this.#version, 0);
    if (request.instance) this.#members.shown.set(request.instance, version);
    return {
      hostname: this.#options.hostname,
      auto_discoverable: this.#config.auto_discoverable,
      nodes: request.discover_nodes_info
        ? this.nodes
            .shareable()
            .filter((node) => node.instance !== request.instance)
            .map((node) => ({ hostname: node.hostname, address: node.address, port: node.port }))
        : [],
      endpoints: open,
      closed,
      version,
      instance: this.instance,
      port: this.port,
      tls: this.#tls.enabled,
    };
  }

  /**
   * What an `/info` request says of the node that sent it: that it is up (a known node is heard
   * from; one whose map here is older is asked again; an unknown one is contacted back), or
   * that it is leaving.
   */
  #hearFrom(request: InfoRequest, address: string): void {
    if (!request.instance || request.instance === this.instance || this.#closed) return;
    if (this.#nats) return;
    const known = this.nodes.get(request.instance);
    if (request.leaving) {
      if (known) this.#members.left(known);
      return;
    }
    if (known) {
      this.#members.heard(known);
      if (request.version !== undefined && request.version !== known.version) {
        void this.#refresh(known);
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
      if (identity.instance === this.instance) return "self";
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
    if (answer.instance === this.instance) return "self";
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
      if (this.nodes.unreachable.has(key)) this.#logger.debug(message);
      else this.#logger.warn(this.#retried(address, port) ? `${message}; trying again` : message);
      this.nodes.unreachable.set(key, reason);
      return false;
    }
    this.nodes.unreachable.delete(key);
    this.#retries.delete(key);
    if (fetched === "self") {
      this.#selfAddresses.add(key);
      return true;
    }
    if (!fetched || this.#closed) return true;
    this.#members.adopt(fetched.answer, fetched.clockOffsetMs, address, port);
    if (this.#config.discover_nodes) {
      await Promise.all(
        fetched.answer.nodes
          .filter((other) => !this.nodes.byAddress(other.address, other.port))
          .map((other) => this.#contact(other.address, other.port)),
      );
    }
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
        tls: this.#tls,
        connectTimeoutMs: 3000,
        onRefused: () => this.#members.markDown(node, "it refused the connection"),
        onUnauthorized: () => void this.#refresh(node),
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
      onLost: () => void this.#refresh(node),
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
    for (const node of this.nodes.all()) {
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
    const pong = await this.#pinger.ping(node.address, node.port, wait, node.clockOffsetMs);
    if (pong?.instance === node.instance) {
      this.#members.heard(node);
      if (pong.version === node.version) return;
    }
    await this.#refresh(node);
  }

  /**
   * Four times a second: pings the nodes that are down (a restarted one answers as a new instance,
   * one that is back as itself) and the configured addresses not found yet, and asks them over
   * HTTP as well, at first soon and then less and less often, for when UDP does not get through.
   */
  #probeMissing(): void {
    if (this.#closed) return;
    const now = performance.now();
    for (const node of this.nodes.all()) {
      if (node.alive) continue;
      void this.#pinger.ping(node.address, node.port, PROBE_MS, node.clockOffsetMs).then((pong) => {
        if (pong?.instance === node.instance) this.#members.heard(node);
        else if (pong) void this.#refresh(node);
      });
      if (this.#due(`${node.address}:${node.port}`, now)) void this.#refresh(node);
    }
    for (const entry of this.#config.node_ips) {
      const { address, port } = parseNodeAddress(entry, this.#config.port);
      const key = `${address}:${port}`;
      if (this.nodes.byAddress(address, port) || this.#selfAddresses.has(key)) continue;
      void this.#pinger.ping(address, port, PROBE_MS).then((pong) => {
        if (pong && pong.instance !== this.instance) void this.#contact(address, port);
      });
      if (this.#due(key, now)) void this.#contact(address, port);
    }
  }

  /**
   * Whether {@link #probeMissing} will try `address:port` again: a node it knows, or a
   * `node_ips` entry; not an address it only heard of (an /info call-back, mDNS).
   */
  #retried(address: string, port: number): boolean {
    if (this.nodes.byAddress(address, port)) return true;
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

  /**
   * Asks a known node its `/info` again; a new instance there replaces it, a refused connection
   * marks it down. One at a time per node; a reason to ask that comes up meanwhile (its channel
   * closed, say) asks once more afterwards, since the answer on its way may predate it.
   */
  async #refresh(node: RemoteNode): Promise<void> {
    const running = this.#refreshing.get(node);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.#refreshing.set(node, state);
    try {
      do {
        state.again = false;
        await this.#refreshOnce(node);
      } while (state.again && !this.#closed && this.nodes.get(node.instance) === node);
    } finally {
      this.#refreshing.delete(node);
    }
  }

  async #refreshOnce(node: RemoteNode, retry = true): Promise<void> {
    if (this.#closed) return;
    try {
      const fetched = await this.#fetchInfo(node.address, node.port);
      if (!fetched || fetched === "self" || this.#closed) return;
      this.#retries.delete(`${node.address}:${node.port}`);
      this.#members.adopt(fetched.answer, fetched.clockOffsetMs, node.address, node.port);
    } catch (error) {
      if (connectionRefused(error)) this.#members.markDown(node, "it refused the connection");
      // A kept-alive connection the node closed when it ended: a new one tells more.
      else if (retry && connectionReset(error)) await this.#refreshOnce(node, false);
      else this.#logger.debug(`heartbeat to "${node.hostname}" failed: ${reasonOf(error)}`);
    }
  }

  /** Tells every node that is up and was shown an older map that this one changed. */
  #announce(): void {
    if (this.#closed || this.#leaving) return;
    const version = Atomics.load(this.#version, 0);
    for (const node of this.nodes.all()) {
      if (node.alive && this.#members.shown.get(node.instance) !== version)
        void this.#refresh(node);
    }
  }

  nodeList(): NodeInfo[] {
    return this.nodes.all().map((node) => node.info());
  }

  /**
   * The first step of closing: tells the other nodes that this one is shutting down, over the
   * channels they have to it and with a goodbye to every node it knows, so their new calls go
   * to other nodes while the calls in flight here finish.
   */
  leave(): void {
    this.#leaving = true;
    clearTimeout(this.#announcement);
    this.#server.leave();
    if (this.#nats) {
      this.#nats.leave();
      return;
    }
    const goodbyes = this.nodes
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

  /** Stops accepting calls, then closes every connection. */
  async close(): Promise<void> {
    await this.#goodbyes;
    this.#closed = true;
    this.#members.close();
    await this.#nats?.close();
    PROCESS_NODES.delete(this.instance);
    clearInterval(this.#heartbeat);
    clearInterval(this.#probe);
    clearTimeout(this.#announcement);
    this.#pinger.close();
    await this.#mdns?.close();
    await this.#responder?.close();
    for (const node of this.nodes.all()) node.connection.close();
    await this.#server.close();
    await Promise.all([this.#http.close(), this.#sync.close()]);
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
