/**
 * The mesh over NATS (`networking.transport: nats`): nodes find each other, watch each other
 * and call each other through NATS servers, with no `node_ips` and no node-to-node
 * connection. docs/protocol.md ("NATS") gives the subjects and messages.
 *
 *   <prefix>.announce              every node, every heartbeat: who it is, its map's version,
 *                                  or that it is leaving; liveness comes from these. Sent
 *                                  with a reply inbox when a node joins: the others answer
 *   <prefix>.node.<instance>.info  request: the node's info answer (its endpoints)
 *   <prefix>.node.<instance>.hello request: opens a pipe to the node (pipe.ts)
 *   <prefix>.pipe.<id>.s / .c      the pipe's messages, towards the serving / calling node
 *
 * With a secret, every announce and request is signed as an HTTP request is (docs/security.md),
 * with method `NATS` and the subject as path, for the instance it is sent to (`*` for
 * announces); every answer carries `x-aio-answer`; each pipe is sealed with a session key both
 * sides derive in the hello. A process that can publish on the NATS server but lacks the
 * secret runs nothing and is listed nowhere.
 */
import { setTimeout as delay } from "node:timers/promises";
import {
  connect,
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import type { NetworkingConfig } from "../../../config/types.js";
import { NotDelivered } from "../../../errors.js";
import type { Logger } from "../../../log.js";
import {
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TIME,
  MAX_SKEW_MS,
  type PeerIdentity,
} from "../../auth.js";
import { NodeConnection } from "../../connection.js";
import { MAX_JSON_DEPTH } from "../../limits.js";
import { Membership } from "../../membership.js";
import { type Broadcast, infoAnswer, type Mesh, type MeshContext } from "../../mesh.js";
import type { NodeRegistry, RemoteNode } from "../../nodes.js";
import type { PacketPipe, PipeEvents } from "../../transport.js";
import {
  type InfoAnswer,
  type InfoRequest,
  parseJson,
  readInfoAnswer,
  readInfoRequest,
} from "../../wire.js";
import { NatsBlocking } from "./blocking.js";
import { natsConnectOptions } from "./connect.js";
import { dialNats, type NatsPipes, serveHello } from "./hello.js";
import { NatsPipe } from "./pipe.js";
import { NatsSigning } from "./signing.js";
import { NatsTopics } from "./topics.js";

/** How long start() waits for NATS before going on without it (it keeps trying). */
const FIRST_CONNECT_MS = 3000;
/** How long close() waits for NATS to take what is queued, and to close. */
const CLOSE_FLUSH_MS = 500;
/** Changes of this node's plugins within this long are announced once. */
const ANNOUNCE_DELAY_MS = 50;
/**
 * A node that joins waits this long for the first answer to its announce (the others answer at
 * once), and after each answer this long for more, at most JOIN_MAX_MS in all: start() returns
 * knowing the mesh. A node that answers later is still found, by the announce itself.
 */
const JOIN_FIRST_MS = 300;
const JOIN_QUIET_MS = 100;
const JOIN_MAX_MS = 1500;
/** The most start() waits for the join, the info of the nodes that answered included. */
const JOIN_WAIT_MS = 3000;
/** Announces that fail the secret's check are reported at most this often. */
const FOREIGN_WARN_MS = 60_000;
/**
 * A node whose clock reads more than this off the clock of the older nodes that answer its
 * join takes theirs for what it signs to every node (see NatsSigning.adoptClock).
 */
const CLOCK_TOLERANCE_MS = 1000;
/** A join timed off this node's clock is answered at most this often per node. */
const OFF_CLOCK_ANSWER_MS = 1000;
/**
 * Heartbeats timed off this node's clock make it join again, first at most this often, then
 * half as often after each join that changed nothing (nodes that disagree for good, such as two
 * meshes with different clocks on one prefix), up to OFF_CLOCK_REJOIN_MAX_MS.
 */
const OFF_CLOCK_REJOIN_MS = 1000;
const OFF_CLOCK_REJOIN_MAX_MS = 60_000;

interface Announce {
  instance: string;
  hostname: string;
  version: number;
  leaving?: boolean;
  /** In an answer to a join: the answering node's clock, to sign its info request by. */
  time?: number;
  /** In an answer to a join: how long the answering node has been up, in ms (its age). */
  up_ms?: number;
}

/** An announce as received, or undefined for anything else. */
function readAnnounce(text: string): Announce | undefined {
  try {
    const value = parseJson(text, 4) as Partial<Announce>;
    if (
      typeof value.instance !== "string" ||
      !/^[0-9a-f-]{8,64}$/.test(value.instance) ||
      typeof value.hostname !== "string" ||
      typeof value.version !== "number" ||
      (value.time !== undefined && typeof value.time !== "number") ||
      (value.up_ms !== undefined && typeof value.up_ms !== "number")
    ) {
      return undefined;
    }
    return value as Announce;
  } catch {
    return undefined;
  }
}

export class NatsMesh implements Mesh {
  readonly blocking: NatsBlocking;
  readonly #context: MeshContext;
  readonly #config: NetworkingConfig;
  readonly #heartbeatMs: number;
  readonly #livenessMs: number;
  readonly #members: Membership;
  readonly #nodes: NodeRegistry;
  readonly #logger: Logger;
  readonly #prefix: string;
  /** The NATS servers, as errors and logs name them. */
  readonly #where: string;
  readonly #signing: NatsSigning;
  readonly #topics: NatsTopics;
  readonly #pipes = new Set<NatsPipe>();
  /** Pipes lost with the connection to NATS, whose other side is told so once it is back. */
  readonly #orphans = new Set<NatsPipe>();
  readonly #contacts = new Set<string>();
  #nats: NatsConnection | undefined;
  #connected = false;
  /** Why NATS is not connected, for the errors of calls meanwhile. */
  #lastProblem = "not connected yet";
  #beat: ReturnType<typeof setInterval> | undefined;
  #announcement: ReturnType<typeof setTimeout> | undefined;
  #leaving = false;
  #closed = false;
  /** The first join: start() waits for it. */
  #joined: Promise<void> = Promise.resolve();
  /** When an announce that failed the secret's check was last reported. */
  #foreignWarned = Number.NEGATIVE_INFINITY;
  /** When this node's joins timed off its clock were last answered, by node. */
  readonly #offClockAnswered = new Map<string, number>();
  /** When heartbeats timed off this node's clock last made it join again, and the next wait. */
  #offClockRejoined = Number.NEGATIVE_INFINITY;
  #offClockRejoinMs = OFF_CLOCK_REJOIN_MS;
  /** When this node started, by the monotonic clock: its age orders whose clock is kept. */
  readonly #startedAt = performance.now();
  /** Joins collecting answers now: they settle the clock, so heartbeats off it wait for them. */
  #joining = 0;
  /** The first join has settled this node's clock; announces before wait for it. */
  #clockSettled = false;
  #announceWhenSettled = false;
  /** When this node last heard its own announce come back (performance.now()); 0: never. */
  #ownEchoAt = 0;

  constructor(context: MeshContext) {
    this.#context = context;
    this.#config = context.config;
    this.#nodes = context.nodes;
    this.#logger = context.logger;
    this.#heartbeatMs = context.config.heartbeat_interval * 1000;
    this.#livenessMs = context.config.liveness_timeout * 1000;
    this.#prefix = context.config.nats.subject_prefix;
    this.#signing = new NatsSigning(context.config.secret);
    this.#topics = new NatsTopics({
      prefix: this.#prefix,
      signing: this.#signing,
      instance: context.instance,
      maxDepth: MAX_JSON_DEPTH,
      calls: context.calls,
      logger: context.logger,
    });
    this.blocking = new NatsBlocking({
      nats: context.config.nats,
      secret: context.config.secret,
      hostname: context.hostname,
      instance: context.instance,
      maxPacketBytes: context.config.max_body_bytes,
      heartbeatMs: this.#heartbeatMs,
      livenessMs: this.#livenessMs,
    });
    this.#where = `NATS ${context.config.nats.servers.join(", ")}`;
    this.#members = new Membership({
      hostname: context.hostname,
      transport: "nats",
      logger: context.logger,
      nodes: context.nodes,
      emit: context.emit,
      connect: (node) => this.#connectionTo(node),
      askInfo: (node) => this.#askInfo(node),
      stillThere: (node) => this.#stillThere(node),
      version: () => this.#version(),
    });
  }

  #version(): number {
    return Atomics.load(this.#context.version, 0);
  }

  /**
   * Connects to the NATS servers, waiting a little for the first connection: local calls never
   * depend on NATS, so a node starts without it, says so, and keeps trying.
   */
  async start(): Promise<void> {
    this.#problem("not connected yet");
    const connecting = connect(
      natsConnectOptions(this.#config.nats, `aio ${this.#context.hostname}`, this.#livenessMs),
    );
    connecting.then(
      (nats) => this.#ready(nats),
      (error: unknown) => {
        this.#problem((error as Error).message ?? String(error));
        this.#logger.error(`cannot use NATS: ${this.#lastProblem}`);
      },
    );
    const first = await Promise.race([
      connecting.then(
        () => true,
        () => true,
      ),
      delay(FIRST_CONNECT_MS, false, { ref: false }),
    ]);
    if (!first) {
      this.#logger.warn(
        `NATS at ${this.#config.nats.servers.join(", ")} does not answer yet; calls to other nodes fail with NETWORK until it does (trying again)`,
      );
    } else {
      // Bounded: a server that took the connection but answers nothing must not hold start().
      await Promise.race([this.#joined, delay(JOIN_WAIT_MS, undefined, { ref: false })]);
    }
    this.#beat = setInterval(() => this.#heartbeat(), this.#heartbeatMs);
    this.#beat.unref();
  }

  /** NATS cannot be used now, and why: errors of calls to other nodes name it. */
  #problem(why: string): void {
    this.#lastProblem = why;
    this.#nodes.unreachable.set(this.#where, why);
  }

  #ready(nats: NatsConnection): void {
    if (this.#closed) {
      void nats.close();
      return;
    }
    this.#nats = nats;
    this.#connected = true;
    this.#nodes.unreachable.delete(this.#where);
    this.#logger.info(`Connected to NATS at ${nats.getServer()} (subjects ${this.#prefix}.>)`);
    const me = this.#context.instance;
    nats.subscribe(`${this.#prefix}.announce`, {
      callback: (error, message) => {
        if (!error) this.#heardAnnounce(message);
      },
    });
    nats.subscribe(`${this.#prefix}.node.${me}.info`, {
      callback: (error, message) => {
        if (!error) this.#serveInfo(message);
      },
    });
    nats.subscribe(`${this.#prefix}.node.${me}.hello`, {
      callback: (error, message) => {
        if (!error) this.#serveHello(message);
      },
    });
    this.#topics.sync(nats, this.#context.topicPatterns());
    void this.#watchStatus(nats);
    // Subscriptions are in place once the server has seen them: then others may hear of us.
    this.#joined = nats.flush().then(
      () => this.#join(nats).then(() => undefined),
      () => undefined,
    );
  }

  async #watchStatus(nats: NatsConnection): Promise<void> {
    for await (const status of nats.status()) {
      if (this.#closed) return;
      if (status.type === "disconnect") {
        this.#connected = false;
        this.#problem(`the connection to ${status.server} was lost`);
        this.#logger.warn(
          `Lost NATS (${status.server}); calls to other nodes fail with NETWORK until it is back`,
        );
        // Whatever was on its way may or may not have arrived: every pipe ends now, and the
        // other side of each hears so once NATS is back.
        for (const pipe of [...this.#pipes]) {
          pipe.lost();
          this.#orphans.add(pipe);
        }
      } else if (status.type === "reconnect") {
        this.#connected = true;
        this.#nodes.unreachable.delete(this.#where);
        this.#logger.info(`Back on NATS (${status.server})`);
        for (const pipe of this.#orphans) pipe.farewell();
        this.#orphans.clear();
        void this.#join(nats);
      } else if (status.type === "error") {
        this.#problem(String(status.error?.message ?? status.error));
        this.#logger.warn(`NATS: ${this.#lastProblem}`);
      }
    }
  }

  /** The pipes' context on the connection now; undefined while NATS is not connected. */
  #pipesNow(): NatsPipes | undefined {
    const nats = this.#nats;
    if (!nats || !this.#connected) return undefined;
    return {
      nats,
      prefix: this.#prefix,
      signing: this.#signing,
      maxDepth: MAX_JSON_DEPTH,
      maxPacketBytes: this.#config.max_body_bytes,
      open: this.#pipes,
    };
  }

  /** A signed request to another node; `NotDelivered` while NATS is not connected. */
  #request(target: PeerIdentity, subject: string, body: string) {
    const nats = this.#nats;
    if (!nats || !this.#connected) {
      throw new NotDelivered(`NATS is not connected (${this.#lastProblem})`);
    }
    return this.#signing.request(nats, target, subject, body);
  }

  // ---------------------------------------------------------------- discovery and liveness

  #announce(leaving = false): void {
    const nats = this.#nats;
    if (!nats || !this.#connected || this.#closed) return;
    // Not by a clock the first join may change (no heartbeat runs yet): once it is settled.
    if (!this.#clockSettled && !leaving) {
      this.#announceWhenSettled = true;
      return;
    }
    const subject = `${this.#prefix}.announce`;
    const body = JSON.stringify(this.#myAnnounce(leaving));
    const h = this.#signing.broadcastHeaders(subject, body);
    try {
      nats.publish(subject, body, h ? { headers: h } : undefined);
    } catch (error) {
      this.#logger.debug(`announce not sent: ${(error as Error).message}`);
    }
  }

  #myAnnounce(leaving = false): Announce {
    return {
      instance: this.#context.instance,
      hostname: this.#context.hostname,
      version: this.#version(),
      ...(leaving ? { leaving: true } : {}),
    };
  }

  /**
   * Announces this node as a request, with a reply inbox: every node answers with its own
   * announce, so a node that joins (or comes back to NATS) knows the mesh at once rather than
   * at the others' next heartbeat. Collects answers while they come (JOIN_*), settles which
   * clock to sign by, then waits for the info of each node it did not know. True when the
   * clock changed.
   */
  async #join(nats: NatsConnection): Promise<boolean> {
    if (this.#closed || this.#leaving) return false;
    const subject = `${this.#prefix}.announce`;
    const body = JSON.stringify(this.#myAnnounce());
    const h = this.#signing.broadcastHeaders(subject, body);
    const nonce = h?.get(HEADER_NONCE) ?? "";
    const contacts: Promise<void>[] = [];
    /** The clocks of the nodes older than this one, against its own. */
    const olderClocks: number[] = [];
    const sent = Date.now();
    const age = this.#age();
    this.#joining++;
    await this.#collectAnswers(nats, subject, body, h, (reply) => {
      const text = Buffer.from(reply.data).toString("utf8");
      // An answer without the secret's proof is dropped, as any message that lacks it.
      if (!this.#signing.answers(reply, nonce, text)) return false;
      const announce = readAnnounce(text);
      if (!announce || announce.instance === this.#context.instance) return false;
      // Its clock when it answered, against this one's halfway between asking and hearing.
      const offset = announce.time === undefined ? 0 : announce.time - (sent + Date.now()) / 2;
      if (announce.time !== undefined && (announce.up_ms ?? 0) > age) olderClocks.push(offset);
      const contact = this.#learn(announce, offset);
      if (contact) contacts.push(contact);
      return true;
    });
    this.#joining--;
    const changed = this.#settleClock(olderClocks);
    const waiting = !this.#clockSettled && this.#announceWhenSettled;
    this.#clockSettled = true;
    if (changed || waiting) this.#announce();
    await Promise.all(contacts);
    return changed;
  }

  /**
   * Sends the join with a reply inbox and hands each answer to `heard` while they come
   * (JOIN_*); an answer that counts (`heard` says true) waits JOIN_QUIET_MS more for the next.
   * Never rejects: a connection that closes meanwhile ends the join with what it heard.
   */
  #collectAnswers(
    nats: NatsConnection,
    subject: string,
    body: string,
    h: MsgHdrs | undefined,
    heard: (reply: Msg) => boolean,
  ): Promise<void> {
    const inbox = createInbox();
    return new Promise<void>((resolve) => {
      let quiet: ReturnType<typeof setTimeout> | undefined;
      let subscription: Subscription | undefined;
      const done = () => {
        clearTimeout(quiet);
        clearTimeout(cap);
        try {
          subscription?.unsubscribe();
        } catch {
          // The connection closed meanwhile.
        }
        resolve();
      };
      const cap = setTimeout(done, JOIN_MAX_MS);
      try {
        subscription = nats.subscribe(inbox, {
          callback: (error, reply) => {
            if (error) done();
            else if (heard(reply)) {
              clearTimeout(quiet);
              quiet = setTimeout(done, JOIN_QUIET_MS);
            }
          },
        });
        quiet = setTimeout(done, JOIN_FIRST_MS);
        nats.publish(subject, body, { reply: inbox, ...(h ? { headers: h } : {}) });
      } catch (error) {
        this.#logger.debug(`join not sent: ${(error as Error).message}`);
        done();
      }
    });
  }

  /** How long this node has been up, in ms. */
  #age(): number {
    return performance.now() - this.#startedAt;
  }

  /**
   * After a join: a node signs what goes to every node by the clock of the nodes older than it
   * that answered (their median), when its own reads more than CLOCK_TOLERANCE_MS otherwise.
   * Only the younger of two nodes adopts the other's clock, so two that join at once do not
   * swap theirs: the oldest node's clock is the mesh's. True when the clock changed: the node
   * announces itself again, as the others refused its join, timed by its own clock.
   */
  #settleClock(olderClocks: number[]): boolean {
    if (olderClocks.length === 0 || !this.#signing.secret) return false;
    olderClocks.sort((a, b) => a - b);
    const median = olderClocks[olderClocks.length >> 1] as number;
    const offset = Math.abs(median) > CLOCK_TOLERANCE_MS ? Math.round(median) : 0;
    if (Math.abs(offset - this.#signing.clockOffsetMs) <= CLOCK_TOLERANCE_MS) return false;
    this.#signing.adoptClock(offset);
    const seconds = Math.abs(offset / 1000).toFixed(1);
    const message =
      offset === 0
        ? "NATS: this node's clock reads as the other nodes' do; it signs by its own again"
        : `NATS: this node's clock is ${seconds} s ${offset > 0 ? "behind" : "ahead of"} the other nodes' (their answers to its announce say so); it signs what it sends over NATS by theirs. Set the clocks right, e.g. with NTP`;
    if (Math.abs(offset) > MAX_SKEW_MS / 2) this.#logger.warn(message);
    else this.#logger.info(message);
    return true;
  }

  #heardAnnounce(message: Msg): void {
    if (this.#closed) return;
    const nonce = this.#signing.verifyBroadcast(message);
    if (nonce === undefined) {
      this.#refusedAnnounce(message);
      return;
    }
    const announce = readAnnounce(Buffer.from(message.data).toString("utf8"));
    if (!announce) return;
    if (announce.instance === this.#context.instance) {
      this.#ownEchoAt = performance.now();
      return;
    }
    const time = message.headers?.has(HEADER_TIME) ? Number(message.headers.get(HEADER_TIME)) : 0;
    const contact = this.#learn(announce, time ? time - Date.now() : 0);
    if (message.reply) {
      // A node joining: it asks who is there, and hears this node's answer at once.
      if (!announce.leaving) this.#answerJoin(message, nonce);
    } else if (contact) {
      // A newcomer that did not ask: it hears of this node now, not a heartbeat later.
      this.#announceSoon();
    }
  }

  /**
   * Answers a node that joins with this node's announce, its clock and its age: 0 until its own
   * first join has settled its clock, which may still change, so is no clock to take.
   */
  #answerJoin(message: Msg, nonce: string): void {
    if (this.#leaving) return;
    const age = this.#clockSettled ? this.#age() : 0;
    this.#signing.respond(
      message,
      nonce,
      JSON.stringify({ ...this.#myAnnounce(), time: this.#signing.now(), up_ms: age }),
    );
  }

  /**
   * An announce that failed the secret's check. A genuine one timed off this node's clock comes
   * from a node whose clock is off (or is replayed): when it joins, it is answered all the same,
   * though not learnt: the answer's time tells it the mesh's clock, by which it announces itself
   * again (see #settleClock); at most every OFF_CLOCK_ANSWER_MS per node, since a replayed join
   * is answered too. Its heartbeats make this node join again (OFF_CLOCK_REJOIN_*), not while a
   * join runs: the clocks settle even if an answer came too late, or a clock was set right
   * meanwhile. Anything else is ignored.
   */
  #refusedAnnounce(message: Msg): void {
    const offClock = this.#signing.offClock(message);
    const announce = readAnnounce(Buffer.from(message.data).toString("utf8"));
    const joining = Boolean(message.reply);
    const fromPeer =
      offClock !== undefined &&
      announce !== undefined &&
      !announce.leaving &&
      announce.instance !== this.#context.instance;
    const now = performance.now();
    if (fromPeer && joining) {
      const last = this.#offClockAnswered.get(announce.instance) ?? Number.NEGATIVE_INFINITY;
      if (now - last >= OFF_CLOCK_ANSWER_MS) {
        if (this.#offClockAnswered.size >= 1024) this.#offClockAnswered.clear();
        this.#offClockAnswered.set(announce.instance, now);
        this.#answerJoin(message, offClock);
      }
    } else if (
      fromPeer &&
      this.#nats &&
      this.#joining === 0 &&
      now - this.#offClockRejoined >= this.#offClockRejoinMs
    ) {
      this.#offClockRejoined = now;
      void this.#join(this.#nats).then((changed) => {
        this.#offClockRejoinMs = changed
          ? OFF_CLOCK_REJOIN_MS
          : Math.min(this.#offClockRejoinMs * 2, OFF_CLOCK_REJOIN_MAX_MS);
      });
    }
    this.#foreign(message, announce?.hostname, fromPeer && joining);
  }

  /**
   * Says, at most once a minute, why an announce failed the secret's check, as far as the
   * message shows. Nothing answers such an announce but a join off the clock, so without this
   * a node with another secret would see nobody and be seen by nobody, and its calls would say
   * only PLUGIN_NOT_FOUND.
   */
  #foreign(message: Msg, claimed: string | undefined, answered: boolean): void {
    const wall = Date.now();
    if (this.#closed || wall - this.#foreignWarned < FOREIGN_WARN_MS) return;
    this.#foreignWarned = wall;
    const h = message.headers;
    const who =
      claimed === undefined ? "a client" : `a node calling itself ${JSON.stringify(claimed)}`;
    const sent = h?.has(HEADER_TIME) ? Number(h.get(HEADER_TIME)) : Number.NaN;
    const skew = sent - this.#signing.now();
    let why = "signed with another secret (or replayed); it is ignored";
    if (!h?.has(HEADER_SIGNATURE)) why = "not signed (a node without a secret); it is ignored";
    else if (Math.abs(skew) > MAX_SKEW_MS) {
      why = `signed at a time ${Math.round(skew / 1000)} s from this node's clock (more than ${MAX_SKEW_MS / 1000} s); ${
        answered
          ? "it is answered with this node's clock, to sign by from then on"
          : "it is ignored"
      }. Set the clocks right, e.g. with NTP`;
    }
    this.#logger.warn(
      `NATS: ${who} announces itself on ${this.#prefix}.announce ${why}. Nodes meet only with the same networking.secret (or keep apart with another subject_prefix)`,
    );
  }

  /**
   * What an announce tells: a node is there (asked for its info when it is new: the contact
   * returned), has changed, or is leaving; and its clock, which changes when it takes the
   * mesh's (see #settleClock): requests to it are timed by it.
   */
  #learn(announce: Announce, clockOffsetMs: number): Promise<void> | undefined {
    const known = this.#nodes.get(announce.instance);
    if (announce.leaving) {
      if (known) this.#members.left(known);
      return undefined;
    }
    if (known) {
      if (Math.abs(clockOffsetMs - known.clockOffsetMs) > CLOCK_TOLERANCE_MS) {
        known.clockOffsetMs = clockOffsetMs;
      }
      this.#members.heard(known);
      if (announce.version !== known.version) void this.#members.refresh(known);
      return undefined;
    }
    return this.#contact(announce.instance, clockOffsetMs);
  }

  /** Asks a node heard of for the first time who it is and what it serves, and adds it. */
  async #contact(instance: string, clockOffsetMs: number): Promise<void> {
    if (this.#contacts.has(instance) || this.#leaving) return;
    this.#contacts.add(instance);
    try {
      const asked = performance.now();
      const answer = await this.#fetchInfo({ instance, clockOffsetMs });
      if (answer && !this.#closed) {
        const rtt = performance.now() - asked;
        this.#members.adopt(answer, clockOffsetMs, `nats:${instance}`, 0, rtt);
      }
    } catch (error) {
      this.#logger.warn(`cannot ask node ${instance} over NATS: ${(error as Error).message}`);
    } finally {
      this.#contacts.delete(instance);
    }
  }

  #infoRequest(): InfoRequest {
    return {
      hostname: this.#context.hostname,
      port: 0,
      discover_nodes_info: false,
      instance: this.#context.instance,
      version: this.#version(),
    };
  }

  async #fetchInfo(target: PeerIdentity): Promise<InfoAnswer | undefined> {
    const request = this.#infoRequest();
    const { text } = await this.#request(
      target,
      `${this.#prefix}.node.${target.instance}.info`,
      JSON.stringify(request),
    );
    const answer = readInfoAnswer(parseJson(text, MAX_JSON_DEPTH));
    if (answer.instance !== target.instance) return undefined;
    this.#members.shown.set(answer.instance, request.version ?? 0);
    return answer;
  }

  #serveInfo(message: Msg): void {
    const nonce = this.#signing.verify(message, this.#context.instance);
    if (nonce === undefined || this.#closed) return;
    let request: InfoRequest;
    try {
      request = readInfoRequest(
        parseJson(Buffer.from(message.data).toString("utf8"), MAX_JSON_DEPTH),
      );
    } catch {
      return;
    }
    const answer = infoAnswer(this.#context, request, []);
    if (request.instance) this.#members.shown.set(request.instance, answer.version);
    this.#signing.respond(message, nonce, JSON.stringify(answer));
  }

  /** Asks a known node once for its info, and adopts the answer. */
  async #askInfo(node: RemoteNode): Promise<void> {
    try {
      const asked = performance.now();
      const answer = await this.#fetchInfo(node.identity());
      if (answer && !this.#closed) {
        const rtt = performance.now() - asked;
        this.#members.adopt(answer, node.clockOffsetMs, node.address, 0, rtt);
      }
    } catch (error) {
      this.#logger.debug(`asking "${node.hostname}" over NATS failed: ${(error as Error).message}`);
    }
  }

  /** Whether `node` still answers as itself: no one listening on its subjects proves it gone. */
  async #stillThere(node: RemoteNode): Promise<boolean> {
    try {
      return (await this.#fetchInfo(node.identity()))?.instance === node.instance;
    } catch (error) {
      return !/no responders/i.test((error as Error).message);
    }
  }

  /**
   * One heartbeat: an announce, and every node silent for longer than the liveness timeout is
   * marked down. Not while NATS itself is gone, or silent (this node's own announces do not
   * come back): then every node is silent, and calls say why.
   */
  #heartbeat(): void {
    if (this.#closed || this.#leaving) return;
    this.#announce();
    if (!this.#connected) return;
    if (this.#natsSilent()) return;
    for (const node of this.#nodes.all()) {
      if (node.alive && node.silentFor() > this.#livenessMs) {
        this.#members.markDown(
          node,
          `sent nothing over NATS for ${(node.silentFor() / 1000).toFixed(1)} s`,
        );
      }
    }
  }

  /**
   * Whether this node's own announces stopped coming back: then what went silent is NATS, not
   * every other node, and none is marked down for it. The client's pings give the server up
   * soon (connect.ts), and calls then say so. Each heartbeat sends an announce, so the last one
   * back is a heartbeat old, plus the round trip; half a heartbeat more is overdue. A node is
   * marked down once silent for the liveness timeout, and the others announce every heartbeat
   * too, so by then this node's own echo is overdue whenever the timeout is at least 2.5
   * heartbeats (the default is 3).
   */
  #natsSilent(): boolean {
    return performance.now() - this.#ownEchoAt > 1.5 * this.#heartbeatMs;
  }

  /** Over HTTP, `/info` is answered for clients that are not nodes; nodes meet on NATS. */
  answerInfo(request: InfoRequest): InfoAnswer | undefined {
    return this.#config.direct_discoverable ? infoAnswer(this.#context, request, []) : undefined;
  }

  /** A blocking call found nothing listening at the node's HTTP address. */
  refused(node: RemoteNode): void {
    this.#members.markDown(node, "it refused the connection");
  }

  /**
   * This node's plugins or subscriptions changed: its topic subjects follow at once, and the
   * others hear of it (they ask for its info again).
   */
  bumpVersion(): void {
    if (this.#nats && !this.#closed) this.#topics.sync(this.#nats, this.#context.topicPatterns());
    this.#announceSoon();
  }

  /** A publish, once on its subject, to every node with a matching subscription. */
  readonly broadcast: Broadcast = (publish, expected, timeoutMs) => {
    const nats = this.#nats;
    // Without NATS nothing can be handed over: no node gets it.
    if (!nats || !this.#connected) return Promise.resolve(0);
    return this.#topics.publish(nats, publish, expected, timeoutMs);
  };

  /** An announce within ANNOUNCE_DELAY_MS: reasons to announce that come up meanwhile share it. */
  #announceSoon(): void {
    if (this.#leaving || this.#closed || this.#announcement) return;
    this.#announcement = setTimeout(() => {
      this.#announcement = undefined;
      this.#announce();
    }, ANNOUNCE_DELAY_MS);
    this.#announcement.unref();
  }

  // ---------------------------------------------------------------- pipes

  #connectionTo(node: RemoteNode): NodeConnection {
    return new NodeConnection({
      dial: (events) => this.#dial(node, events),
      hostname: node.hostname,
      maxPacketBytes: this.#maxPacket(),
      // Only the pipe's own answers count: announces prove the node is there, not that the
      // pipe still reaches it (its end may have gone with the node's connection to NATS).
      keepalive: {
        intervalMs: this.#heartbeatMs,
        silentMs: this.#livenessMs,
        heard: () => false,
      },
      onBadMessage: (error) =>
        this.#logger.warn(`closing the pipe to ${node.hostname}: ${error.message}`),
      onLeaving: () => this.#members.left(node),
      onSilent: () => {
        if (this.#natsSilent()) return;
        this.#members.markDown(
          node,
          `its pipe and announces were silent for ${this.#livenessMs / 1000} s`,
        );
      },
      onLost: () => void this.#members.refresh(node),
    });
  }

  #maxPacket(): number {
    return this.#nats
      ? NatsPipe.maxPacketBytes(this.#nats, this.#config.max_body_bytes)
      : this.#config.max_body_bytes;
  }

  #dial(node: RemoteNode, events: PipeEvents): Promise<PacketPipe> {
    const pipes = this.#pipesNow();
    if (!pipes) {
      return Promise.reject(new NotDelivered(`NATS is not connected (${this.#lastProblem})`));
    }
    const target = { ...node.identity(), hostname: node.hostname };
    return dialNats(pipes, this.#context, target, events);
  }

  #serveHello(message: Msg): void {
    const pipes = this.#pipesNow();
    if (!pipes || this.#closed) return;
    serveHello(
      pipes,
      {
        instance: this.#context.instance,
        leaving: () => this.#leaving,
        accept: (pipe, peer) => this.#context.server.accept(pipe, peer),
        logger: this.#logger,
      },
      message,
    );
  }

  // ---------------------------------------------------------------- the end

  /** The first step of closing: every node hears that this one is leaving. */
  leave(): void {
    this.#leaving = true;
    clearTimeout(this.#announcement);
    this.#announce(true);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#members.close();
    clearInterval(this.#beat);
    clearTimeout(this.#announcement);
    for (const pipe of [...this.#pipes]) pipe.close();
    await this.blocking.close();
    const nats = this.#nats;
    this.#nats = undefined;
    if (!nats) return;
    // What is queued (byes, the leaving announce) goes out if NATS is there; a flush waits for
    // the server, so not while reconnecting, and not for long.
    if (this.#connected) {
      await Promise.race([
        nats.flush().catch(() => undefined),
        delay(CLOSE_FLUSH_MS, undefined, { ref: false }),
      ]);
    }
    await Promise.race([
      nats.close().catch(() => undefined),
      delay(CLOSE_FLUSH_MS, undefined, { ref: false }),
    ]);
  }
}
