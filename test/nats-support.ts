/**
 * Real nats-server processes for the NATS tests (issue 14): a single server, one that wants a
 * user and password or a token, and a cluster whose servers are joined by routes. Every server
 * listens on 127.0.0.1 on ports the server picks itself (`-1`), read from its log, so two test
 * files never race for a port; a restarted server gets the same ports back.
 *
 * A start is awaited on the server's own log lines ("Server is ready", "Listening for route
 * connections"), a cluster's routes and a subscription's spread over them on the monitoring port;
 * nothing sleeps. {@link stopNatsServers} (afterAll) kills every server started so far, and a
 * process that exits anyway kills its servers on the way out.
 *
 * Needs Debian's `nats-server` (`apt-get install nats-server`; .ci/run installs it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import { createAccount, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";
import { waitFor } from "./support.js";

const LOOPBACK = "127.0.0.1";

/**
 * The nats-server binary: on PATH, or where Debian puts it (/usr/sbin, often not on a user's
 * PATH). Throws, saying how to install it, when there is none.
 */
export function natsServerBinary(): string {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin"];
  for (const dir of dirs.filter(Boolean)) {
    const file = join(dir, "nats-server");
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // Not here; the next folder.
    }
  }
  throw new Error(
    "nats-server not found (looked on PATH, /usr/sbin and /usr/local/sbin): the NATS tests " +
      "start real servers; install it with `apt-get install nats-server` (Debian), as .ci/run does",
  );
}

export interface NatsServerOptions {
  /** The server's name in logs and cluster listings (default nats-<n>). */
  name?: string;
  /** Clients must log in with this user and `pass`. */
  user?: string;
  pass?: string;
  /** Clients must present this token. */
  token?: string;
  /** Join a cluster of this name: listen for routes (on a port of the server's choosing). */
  cluster?: string;
  /** Route URLs of other servers of the cluster (`nats://127.0.0.1:<cluster port>`). */
  routes?: string[];
  /** More command-line arguments, after the helper's own. */
  args?: string[];
  /** How long a start may take (default 5000 ms). */
  timeoutMs?: number;
  /**
   * Run in this network namespace (`ip netns exec`), listening on `host`, its address there:
   * for the tests of several hosts (netns-support.ts). Its monitoring port is then out of reach.
   */
  netns?: { name: string; host: string };
}

const servers = new Set<NatsServer>();
let counter = 0;

process.once("exit", () => {
  for (const server of servers) server.signal("SIGKILL");
});

/** One nats-server process, which can be killed and started again on the same ports. */
export class NatsServer {
  readonly name: string;
  readonly options: NatsServerOptions;
  /** Client port, monitoring (HTTP) port, and the route port of a cluster member (else 0). */
  port = 0;
  monitorPort = 0;
  clusterPort = 0;
  /** How many times this server has started (1 after the first start). */
  starts = 0;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log: string[] = [];
  /** The address it listens on: 127.0.0.1, or its namespace's. */
  readonly #host: string;

  constructor(options: NatsServerOptions = {}) {
    this.options = options;
    this.name = options.name ?? `nats-${++counter}`;
    this.#host = options.netns?.host ?? LOOPBACK;
  }

  /** `nats://<host>:<port>`, for clients. */
  get url(): string {
    return `nats://${this.#host}:${this.port}`;
  }

  /** `nats://<host>:<cluster port>`, for other servers' routes. */
  get routeUrl(): string {
    if (!this.clusterPort) throw new Error(`${this.name} is not a cluster member`);
    return `nats://${this.#host}:${this.clusterPort}`;
  }

  get running(): boolean {
    const child = this.#child;
    return child?.pid !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** The server's log (stderr) since its last start. */
  log(): string {
    return this.#log.join("\n");
  }

  /**
   * Starts the process and resolves once it says it is ready (and, in a cluster, listens for
   * routes). Its first start picks free ports; a later one takes the same ports again.
   */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    const o = this.options;
    const host = this.#host;
    const args = ["-a", host, "-p", port(this.port), "-m", port(this.monitorPort), "-n", this.name];
    if (o.user !== undefined) args.push("--user", o.user, "--pass", o.pass ?? "");
    if (o.token !== undefined) args.push("--auth", o.token);
    if (o.cluster !== undefined) {
      args.push(
        "--cluster_name",
        o.cluster,
        "--cluster",
        `nats://${host}:${port(this.clusterPort)}`,
      );
      if (o.routes?.length) args.push("--routes", o.routes.join(","));
    }
    args.push(...(o.args ?? []));

    const binary = natsServerBinary();
    // `ip netns exec` execs the server: the child is the server itself, for signals and exit.
    const [command, commandArgs] = o.netns
      ? ["ip", ["netns", "exec", o.netns.name, binary, ...args]]
      : [binary, args];
    const child = spawn(command, commandArgs, { stdio: ["ignore", "ignore", "pipe"] });
    this.#child = child;
    this.#log = [];
    servers.add(this);
    // "error" without "exit" when the binary could not be run at all.
    this.#exited = new Promise((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    });
    const timeoutMs = o.timeoutMs ?? 5000;
    const listening = new RegExp(` on ${host.replaceAll(".", "\\.")}:(\\d+)$`);

    await new Promise<void>((resolve, reject) => {
      const wanted = { ready: false, routes: o.cluster === undefined };
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.running) child.kill("SIGKILL");
        reject(new Error(`nats-server ${this.name} ${why}; its log:\n${this.log()}`));
      };
      const timer = setTimeout(() => fail(`was not ready within ${timeoutMs} ms`), timeoutMs);
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        fail(`exited (${code ?? signal}) before it was ready`);
      child.on("error", (error) => fail(`could not start (${binary}: ${error.message})`));
      child.once("exit", onExit);
      createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
        if (this.#log.length < 10_000) this.#log.push(line);
        const listen = listening.exec(line);
        if (listen) {
          const found = Number(listen[1]);
          if (line.includes("Listening for client connections")) this.port = found;
          else if (line.includes("Starting http monitor")) this.monitorPort = found;
          else if (line.includes("Listening for route connections")) {
            this.clusterPort = found;
            wanted.routes = true;
          }
        }
        if (line.endsWith("Server is ready")) wanted.ready = true;
        if (!settled && wanted.ready && wanted.routes) {
          settled = true;
          clearTimeout(timer);
          child.removeListener("exit", onExit);
          this.starts++;
          resolve();
        }
      });
    });
  }

  /** Sends `signal` to the process if it runs (no wait). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.#child?.kill(signal);
  }

  /** SIGKILLs the server and resolves once it is gone; its ports are free for {@link restart}. */
  async kill(): Promise<void> {
    this.signal("SIGKILL");
    await this.#exited;
  }

  /** SIGKILL, then a start on the same ports. */
  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** GETs a monitoring endpoint (`/varz`, `/routez`, `/subsz?subs=1`, …) as JSON. */
  async monitor<T = Record<string, unknown>>(path: string): Promise<T> {
    const response = await fetch(`http://${this.#host}:${this.monitorPort}${path}`);
    if (!response.ok) throw new Error(`${this.name} ${path}: HTTP ${response.status}`);
    return (await response.json()) as T;
  }

  /** Resolves once this server has exactly `count` routes (polls /routez). */
  async waitForRoutes(count: number, timeoutMs = 5000): Promise<void> {
    await waitFor(
      async () => (await this.monitor<{ num_routes: number }>("/routez")).num_routes === count,
      `${this.name} to have ${count} route(s)`,
      timeoutMs,
    );
  }

  /**
   * Resolves once this server knows of a subscription on exactly `subject`: one of its own
   * clients' (/subsz) or one a route told it of (/routez), so a message published here reaches
   * the subscriber, wherever in the cluster it is.
   */
  async waitForInterest(subject: string, timeoutMs = 5000): Promise<void> {
    type Subsz = { subscriptions_list?: Array<{ subject: string }> };
    type Routez = { routes?: Array<{ subscriptions_list?: string[] }> };
    await waitFor(
      async () => {
        const [subsz, routez] = await Promise.all([
          this.monitor<Subsz>("/subsz?subs=1&limit=100000"),
          this.monitor<Routez>("/routez?subs=1"),
        ]);
        return (
          subsz.subscriptions_list?.some((sub) => sub.subject === subject) ||
          routez.routes?.some((route) => route.subscriptions_list?.includes(subject))
        );
      },
      `${this.name} to know of a subscription on ${subject}`,
      timeoutMs,
    );
  }
}

function port(known: number): string {
  return known ? String(known) : "-1";
}

/** A server started with `options`, ready for clients. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const server = new NatsServer(options);
  await server.start();
  return server;
}

/** A cluster of `size` servers (default 2), each routed to the ones before it. */
export class NatsCluster {
  readonly servers: NatsServer[];

  constructor(servers: NatsServer[]) {
    this.servers = servers;
  }

  /** The clients' URLs of every server. */
  get urls(): string[] {
    return this.servers.map((server) => server.url);
  }

  /** Resolves once every running server has a route to every other running one. */
  async waitForRoutes(timeoutMs = 5000): Promise<void> {
    const running = this.servers.filter((server) => server.running);
    await Promise.all(running.map((server) => server.waitForRoutes(running.length - 1, timeoutMs)));
  }
}

/**
 * Starts a cluster of `size` servers named `<name>-a`, `<name>-b`, … (`options` for each, e.g.
 * credentials) and resolves once all routes are up.
 */
export async function startNatsCluster(
  size = 2,
  options: Omit<NatsServerOptions, "cluster" | "routes" | "name"> & { name?: string } = {},
): Promise<NatsCluster> {
  const name = options.name ?? `cluster-${++counter}`;
  const members: NatsServer[] = [];
  for (let i = 0; i < size; i++) {
    members.push(
      await startNatsServer({
        ...options,
        name: `${name}-${String.fromCharCode(97 + i)}`,
        cluster: name,
        routes: members.map((server) => server.routeUrl),
      }),
    );
  }
  const cluster = new NatsCluster(members);
  await cluster.waitForRoutes();
  return cluster;
}

/** SIGKILLs every server started so far and waits until they are gone; for afterAll. */
export async function stopNatsServers(): Promise<void> {
  const all = [...servers];
  servers.clear();
  await Promise.all(all.map((server) => server.kill()));
}

// ------------------------------------------------------------------------ decentralized auth

/** A NATS JWT (v2) for `subject`, signed by `issuer`'s nkey. */
function natsJwt(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>) {
  const claims = {
    jti: "",
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  };
  claims.jti = createHash("sha256").update(JSON.stringify(claims)).digest("hex").toUpperCase();
  const header = Buffer.from(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" })).toString(
    "base64url",
  );
  const signing = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
  return `${signing}.${Buffer.from(issuer.sign(Buffer.from(signing))).toString("base64url")}`;
}

/** A user's creds file as `nsc` writes it: the user's JWT and its nkey seed. */
function credsFile(userJwt: string, user: KeyPair): string {
  const seed = Buffer.from(user.getSeed()).toString("utf8");
  return `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
}

/**
 * NATS's decentralized authentication, made as `nsc` would: an operator, one account and a
 * user of it. Returns the server's config file (operator mode, the account preloaded; pass it
 * with `args: ["-c", config]`), the user's creds file, and the creds file of a user of another
 * account the server does not trust.
 */
export function natsOperator(): { config: string; creds: string; untrustedCreds: string } {
  const dir = mkdtempSync(join(tmpdir(), "aio-nats-jwt-"));
  const operator = createOperator();
  const account = createAccount();
  const user = createUser();
  const accountId = account.getPublicKey();
  const unlimited = { subs: -1, data: -1, payload: -1 };
  const operatorJwt = natsJwt(operator, operator.getPublicKey(), "aio-tests", {
    type: "operator",
  });
  const accountJwt = natsJwt(operator, accountId, "aio", {
    type: "account",
    limits: { ...unlimited, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 },
    default_permissions: { pub: {}, sub: {} },
  });
  const userJwt = natsJwt(account, user.getPublicKey(), "node", {
    type: "user",
    pub: {},
    sub: {},
    ...unlimited,
  });
  const stranger = createAccount();
  const strangerUser = createUser();
  const strangerJwt = natsJwt(stranger, strangerUser.getPublicKey(), "stranger", {
    type: "user",
    pub: {},
    sub: {},
    ...unlimited,
  });
  const config = join(dir, "server.conf");
  writeFileSync(
    config,
    `operator: ${operatorJwt}\nresolver: MEMORY\nresolver_preload: {\n  ${accountId}: ${accountJwt}\n}\n`,
  );
  const creds = join(dir, "node.creds");
  writeFileSync(creds, credsFile(userJwt, user));
  const untrustedCreds = join(dir, "stranger.creds");
  writeFileSync(untrustedCreds, credsFile(strangerJwt, strangerUser));
  return { config, creds, untrustedCreds };
}
