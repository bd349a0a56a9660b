/**
 * The node protocol's messages: the JSON bodies of the HTTP endpoints and the packets of the
 * node-to-node channel, and the one parser every received byte goes through.
 *
 * Nothing received is evaluated or turned into code: bodies are parsed with `JSON.parse`,
 * refused when they carry a prototype-polluting key or nest too deep, then checked field by
 * field before anything uses them.
 */

import type { ArgumentType, ManifestArgument } from "../config/types.js";
import type { Call } from "../core/call.js";
import {
  RequestError,
  type RequestErrorCode,
  TOPIC_PLUGIN,
  type WireError,
  WireProblem,
} from "../errors.js";
import { patternProblem, topicProblem } from "../topic-names.js";
import type { PeerIdentity } from "./auth.js";

/** What `POST /execute` and `POST /execute_stream` carry, and a channel call packet too. */
export interface WireCall {
  plugin: string;
  method: string;
  /** A topic request: the node chooses the handler; `plugin` and `method` are then empty. */
  topic?: string;
  args?: unknown;
  plugin_uuid?: string;
  author?: string;
  author_host?: string;
  request_id?: string;
  /** Milliseconds left of the caller's deadline. */
  timeout_ms?: number;
}

/** What a call sends to the node that runs it. */
export function wireCall(call: Call, args: unknown, authorHost: string): WireCall {
  // A topic request names only its topic; readCall gives it empty `plugin` and `method` again.
  const wire: WireCall =
    call.plugin === TOPIC_PLUGIN
      ? ({ topic: call.method, request_id: call.requestId, author_host: authorHost } as WireCall)
      : {
          plugin: call.plugin,
          method: call.method,
          request_id: call.requestId,
          author_host: authorHost,
        };
  if (args !== undefined) wire.args = args;
  if (call.pluginUuid !== undefined) wire.plugin_uuid = call.pluginUuid;
  if (call.caller.kind === "plugin") wire.author = call.caller.name;
  const remaining = call.remaining();
  if (remaining !== undefined) wire.timeout_ms = Math.ceil(remaining);
  return wire;
}

/** One remotely callable endpoint, as `/info` lists it. */
export interface WireEndpoint {
  plugin: string;
  plugin_uuid: string;
  access_name: string;
  kind: string;
  description: string;
  tags: string[];
  accessible_by_other_plugins?: boolean;
  arguments?: ManifestArgument[];
  /** The endpoint's subscription pattern (`topic:` in its manifest). */
  topic?: string;
  /** Its result's type (`returns:` in its manifest). */
  returns?: ArgumentType;
}

/** An endpoint the asking node may not call, and why (as the serving node words it). */
export interface WireRefusal {
  plugin: string;
  access_name: string;
  reason: string;
}

export interface WireNode {
  hostname: string;
  address: string;
  port: number;
}

export interface InfoRequest {
  hostname: string;
  port: number;
  discover_nodes_info: boolean;
  /** The asking node's instance id, so a node never mistakes itself for another. */
  instance?: string;
  /** The asking node's endpoint-map version: a node whose view of it is older asks it again. */
  version?: number;
  /** The asking node is shutting down: this is its goodbye, not a question. */
  leaving?: boolean;
}

export interface InfoAnswer {
  hostname: string;
  auto_discoverable: boolean;
  nodes: WireNode[];
  endpoints: WireEndpoint[];
  /** Endpoints of enabled plugins that the asking node may not call, with the reason. */
  closed: WireRefusal[];
  /** Topic patterns the asking node may publish to there (endpoints' and code subscriptions'). */
  topics: string[];
  /** Changes whenever the node's plugins or endpoints change. */
  version: number;
  /** Random per running node: tells two nodes claiming one hostname apart. */
  instance: string;
  port: number;
  tls: boolean;
}

/**
 * A `GET /ping` answer read as what a client needs to sign for the node: its instance id, and
 * its clock against this one's, from the node's `time` and when the question was asked
 * (`sentAt`) and answered (`receivedAt`), both by this node's clock. Throws `WireProblem` for
 * an answer without them.
 */
export function readIdentity(
  body: unknown,
  sentAt: number,
  receivedAt: number,
): PeerIdentity & { hostname?: string } {
  const record = isRecord(body) ? body : {};
  const { instance, time, hostname } = record;
  if (typeof instance !== "string" || instance === "" || typeof time !== "number") {
    throw new WireProblem("BAD_REQUEST", "the /ping answer lacks instance or time");
  }
  const identity: PeerIdentity & { hostname?: string } = {
    instance,
    clockOffsetMs: Math.round(time - (sentAt + receivedAt) / 2),
  };
  if (typeof hostname === "string") identity.hostname = hostname;
  return identity;
}

/** Channel packets. `id` pairs answers with calls; ids are chosen by the calling side. */
export type ClientPacket =
  | ({ t: "call" | "notify"; id: number } & WireCall)
  | ({ t: "open"; id: number; credit: number } & WireCall)
  | { t: "credit"; id: number; n: number }
  | { t: "cancel"; id: number };

/**
 * The serving side's packets: `serve.ts` sends each through `answer`, and writes `items` as
 * JSON text.
 */
export type ServerPacket =
  | { t: "result"; id: number; value?: unknown }
  | { t: "error"; id: number; error: WireError }
  | { t: "items"; id: number; items: unknown[] }
  | { t: "end"; id: number }
  /** The call or stream was not run: this node is shutting down. Send it elsewhere. */
  | { t: "refused"; id: number }
  /** This node is shutting down: calls already sent finish, new ones go elsewhere. */
  | { t: "leaving" }
  /** The last packet of a node that shuts down: every call it ran here is answered. */
  | { t: "closed" };

export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set([
  "__proto__",
  "constructor",
  "prototype",
]);

/**
 * Walks a parsed JSON value, refusing prototype keys and nesting deeper than `maxDepth`.
 * Recursive, allocating nothing: the recursion stops at `maxDepth` levels (64), so a hostile
 * body cannot exhaust the stack. `for…in` sees every key: `JSON.parse` makes only own,
 * enumerable properties.
 */
export function checkJsonValue(value: unknown, maxDepth: number): void {
  if (typeof value === "object" && value !== null) checkObject(value, 1, maxDepth);
}

function checkObject(value: object, depth: number, maxDepth: number): void {
  if (depth > maxDepth) {
    throw new WireProblem("BAD_REQUEST", `the body nests deeper than ${maxDepth} levels`);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (typeof item === "object" && item !== null) checkObject(item, depth + 1, maxDepth);
    }
    return;
  }
  for (const key in value) {
    if (FORBIDDEN_KEYS.has(key)) {
      throw new WireProblem("BAD_REQUEST", `the body contains the forbidden key "${key}"`);
    }
    const item: unknown = (value as Record<string, unknown>)[key];
    if (typeof item === "object" && item !== null) checkObject(item, depth + 1, maxDepth);
  }
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Received bytes as text: JSON is UTF-8, and bytes that are not valid UTF-8 are refused rather
 * than replaced, so two different bodies never read as the same text.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new WireProblem("BAD_REQUEST", "the body is not valid UTF-8");
  }
}

/** Parses received JSON text; throws `WireProblem` for anything malformed or hostile. */
export function parseJson(text: string, maxDepth: number): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new WireProblem("BAD_REQUEST", `the body is not valid JSON: ${(error as Error).message}`);
  }
  checkJsonValue(value, maxDepth);
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A string field, read by the caller as `body.name` rather than `body[key]`: a property
 * named in the code is read from an inline cache, a computed one by a slower lookup.
 */
function optionalString(value: unknown, key: string): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw new WireProblem("BAD_REQUEST", `"${key}" must be a string`);
  return value;
}

function requiredString(value: unknown, key: string): string {
  const text = optionalString(value, key);
  if (text === undefined) throw new WireProblem("BAD_REQUEST", `"${key}" is required`);
  return text;
}

/** Checks the fields of a call received over HTTP or the channel. */
export function readCall(body: unknown): WireCall {
  if (!isRecord(body)) throw new WireProblem("BAD_REQUEST", "the body must be a JSON object");
  const topic = optionalString(body.topic, "topic");
  if (topic !== undefined) {
    const wrong = topicProblem(topic);
    if (wrong) throw new WireProblem("BAD_REQUEST", wrong);
  }
  const call: WireCall =
    topic !== undefined
      ? { plugin: "", method: topic, topic }
      : {
          plugin: requiredString(body.plugin, "plugin"),
          method: requiredString(body.method, "method"),
        };
  if (body.args !== undefined) call.args = body.args;
  const uuid = optionalString(body.plugin_uuid, "plugin_uuid");
  if (uuid !== undefined) call.plugin_uuid = uuid;
  const author = optionalString(body.author, "author");
  if (author !== undefined) call.author = author;
  const authorHost = optionalString(body.author_host, "author_host");
  if (authorHost !== undefined) call.author_host = authorHost;
  const requestId = optionalString(body.request_id, "request_id");
  if (requestId !== undefined) call.request_id = requestId;
  const timeout = body.timeout_ms;
  if (timeout !== undefined && timeout !== null) {
    if (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout < 0) {
      throw new WireProblem("BAD_REQUEST", `"timeout_ms" must be a non-negative number`);
    }
    call.timeout_ms = timeout;
  }
  return call;
}

export function readInfoRequest(body: unknown): InfoRequest {
  if (!isRecord(body)) throw new WireProblem("BAD_REQUEST", "the body must be a JSON object");
  const port = body.port;
  const request: InfoRequest = {
    hostname: optionalString(body.hostname, "hostname") ?? "",
    port: typeof port === "number" && Number.isInteger(port) && port > 0 && port < 65536 ? port : 0,
    discover_nodes_info: body.discover_nodes_info === true,
  };
  const instance = optionalString(body.instance, "instance");
  if (instance !== undefined) request.instance = instance;
  if (typeof body.version === "number" && Number.isSafeInteger(body.version)) {
    request.version = body.version;
  }
  if (body.leaving === true) request.leaving = true;
  return request;
}

/** `host` values that name a node only as seen from the node that sent them. */
const RELATIVE_HOSTS: ReadonlySet<string> = new Set(["local", "any", "remote"]);

/** Rebuilds a `RequestError` from the `error` member of an answer. */
export function errorFromWire(wire: unknown, fallbackHost: string): RequestError {
  const body = isRecord(wire) ? wire : {};
  const code = typeof body.code === "string" ? (body.code as RequestErrorCode) : "NETWORK";
  const message =
    typeof body.message === "string"
      ? body.message
      : "the remote node sent an error without a message";
  const text = (key: string) => (typeof body[key] === "string" ? (body[key] as string) : undefined);
  // The serving node names its own host as the call's option there ("local"); to the caller,
  // the error arose on that node.
  const host = text("host");
  const named = host !== undefined && !RELATIVE_HOSTS.has(host) ? host : fallbackHost;
  return new RequestError(
    code,
    message,
    {
      requestId: text("request_id"),
      plugin: text("plugin"),
      method: text("method"),
      host: named,
    },
    { errorName: text("error_name") },
  );
}

/** An info answer as received: what is malformed in it is left out; no hostname or instance is an error. */
export function readInfoAnswer(body: unknown): InfoAnswer {
  const record = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
  const text = (key: string) => (typeof record[key] === "string" ? (record[key] as string) : "");
  const hostname = text("hostname");
  const instance = text("instance");
  if (!hostname || !instance) throw new Error("the /info answer lacks hostname or instance");
  const list = (key: string) => (Array.isArray(record[key]) ? (record[key] as unknown[]) : []);
  const fields = (value: unknown, ...keys: string[]) =>
    typeof value === "object" &&
    value !== null &&
    keys.every((key) => typeof (value as Record<string, unknown>)[key] === "string");
  const endpoints = list("endpoints").filter((e): e is WireEndpoint =>
    fields(e, "plugin", "access_name", "plugin_uuid"),
  );
  const closed = list("closed").filter((e): e is WireRefusal =>
    fields(e, "plugin", "access_name", "reason"),
  );
  const nodes = list("nodes").filter(
    (n): n is { hostname: string; address: string; port: number } =>
      fields(n, "address") && typeof (n as { port?: unknown }).port === "number",
  );
  return {
    hostname,
    instance,
    auto_discoverable: record.auto_discoverable === true,
    nodes,
    endpoints,
    closed,
    topics: list("topics").filter(
      (pattern): pattern is string => patternProblem(pattern) === undefined,
    ),
    version: typeof record.version === "number" ? record.version : 0,
    port: typeof record.port === "number" ? record.port : 0,
    tls: record.tls === true,
  };
}
