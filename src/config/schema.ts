/**
 * The zod schemas of config.yml and plugin_config.yml, and the translation of zod's issues
 * into readable problems.
 *
 * One schema serves a file and an object alike, so both behave the same. The schemas only
 * check and fill in defaults; making paths absolute and reading the environment happen in
 * load.ts, after a successful parse.
 *
 * Every schema comes in two variants: "strict" reports unknown keys (which the loader turns into
 * warnings), "strip" drops them. The loader parses with the strict one first and, when unknown
 * keys were the only issues, parses again with the strip one.
 */

import { isIPv4, isIPv6 } from "node:net";
import * as z from "zod";
import { patternProblem } from "../topic-names.js";
import { ARGUMENT_TYPES, matchesType } from "./argument-types.js";
import type { Isolation, LogLevelName, TransportName } from "./types.js";

/** A path into the data: keys and list indexes. */
export type KeyPath = ReadonlyArray<string | number>;

/** A problem found by a schema, before a file and line are attached. */
export interface RawProblem {
  path: KeyPath;
  message: string;
}

// ---------------------------------------------------------------------------
// Rendering values and paths.

/** `plugins[1].enabled`; keys that are not plain words are quoted: `a["b c"]`. */
export function formatKeyPath(path: KeyPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** A short rendering of a value with its type: `string "yes"`, `number 3`, `a list`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "an empty value";
  if (typeof value === "string") {
    if (value === "") return "an empty string";
    const short = value.length > 40 ? `${value.slice(0, 37)}...` : value;
    return `string ${JSON.stringify(short)}`;
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return `${typeof value} ${String(value)}`;
  }
  if (Array.isArray(value)) {
    return value.length === 0 ? "an empty list" : `a list of ${value.length} item(s)`;
  }
  if (value instanceof Date) return `date ${value.toISOString()}`;
  if (typeof value === "object") return "a mapping";
  return typeof value;
}

const EXPECTED_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "a boolean",
  array: "a list",
  object: "a mapping",
};

// ---------------------------------------------------------------------------
// Suggestions for misspelled names.

/** Edit distance counting an adjacent transposition as one edit. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, () => new Array<number>(cols).fill(0));
  for (let i = 0; i < rows; i++) (d[i] as number[])[0] = i;
  for (let j = 0; j < cols; j++) (d[0] as number[])[j] = j;
  for (let i = 1; i < rows; i++) {
    const row = d[i] as number[];
    const prev = d[i - 1] as number[];
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1);
      best = Math.min(best, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = best;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

function squash(s: string): string {
  return s.toLowerCase().replace(/[-_\s]/g, "");
}

/** The known name closest to `input`, when it is close enough to be a likely typo. */
export function suggest(input: string, known: readonly string[]): string | undefined {
  const wanted = squash(input);
  if (wanted === "") return undefined;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const distance = editDistance(wanted, squash(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = wanted.length <= 4 ? 1 : wanted.length <= 8 ? 2 : 3;
  return bestDistance <= allowed ? best : undefined;
}

function didYouMean(input: string, known: readonly string[]): string {
  const guess = suggest(input, known);
  return guess === undefined ? "" : `; did you mean "${guess}"?`;
}

// ---------------------------------------------------------------------------
// Building blocks.

/** An empty YAML value (`key:` with nothing after it) means the key's default. */
function field<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : v), schema);
}

const bool = () => z.boolean();
const str = () => z.string();
const nonEmpty = () => z.string().min(1);

/**
 * One of a fixed set of words, compared case-insensitively; `aliases` are accepted too, `hints`
 * only feed the suggestion in the error.
 */
function choice<T extends string>(
  what: string,
  values: readonly T[],
  options: {
    normalize: (s: string) => string;
    aliases?: Readonly<Record<string, T>>;
    hints?: Readonly<Record<string, T>>;
  },
) {
  const lookup = new Map<string, T>();
  for (const v of values) lookup.set(options.normalize(v), v);
  for (const [alias, v] of Object.entries(options.aliases ?? {})) {
    lookup.set(options.normalize(alias), v);
  }
  return z
    .string()
    .superRefine((value, ctx) => {
      if (lookup.has(options.normalize(value.trim()))) return;
      const hint = options.hints?.[value.trim().toLowerCase()];
      const guess = hint ?? suggest(value, values);
      ctx.addIssue({
        code: "custom",
        message:
          `unknown ${what} ${JSON.stringify(value)}; expected one of ${values.join(", ")}` +
          (guess === undefined ? "" : `; did you mean "${guess}"?`),
      });
    })
    .transform((value) => lookup.get(options.normalize(value.trim())) as T);
}

const ISOLATIONS: readonly Isolation[] = ["none", "worker"];
const isolation = () => choice("isolation", ISOLATIONS, { normalize: (s) => s.toLowerCase() });

export const LOG_LEVELS: readonly LogLevelName[] = [
  "DEBUG",
  "INFO",
  "WARNING",
  "ERROR",
  "CRITICAL",
];
const logLevel = () =>
  choice("log level", LOG_LEVELS, {
    normalize: (s) => s.toUpperCase(),
    aliases: { WARN: "WARNING", FATAL: "CRITICAL" },
  });

const argumentType = () =>
  choice("type", ARGUMENT_TYPES, {
    normalize: (s) => s.toLowerCase(),
    hints: {
      integer: "int",
      long: "int",
      double: "float",
      decimal: "float",
      text: "str",
      map: "dict",
      mapping: "dict",
      record: "dict",
      tuple: "list",
      sequence: "list",
      unknown: "any",
      none: "any",
    },
  });

const TRANSPORTS: readonly TransportName[] = ["channel", "nats"];
const transport = () => choice("transport", TRANSPORTS, { normalize: (s) => s.toLowerCase() });

const positive = () => z.number().gt(0);

const RESOURCE_LIMIT_KEYS = [
  "maxOldGenerationSizeMb",
  "maxYoungGenerationSizeMb",
  "codeRangeSizeMb",
  "stackSizeMb",
] as const;

/** `host`, `host:port`, `[ipv6]:port` (and a bare IPv6 address). */
export function checkNodeAddress(value: string): string | undefined {
  const expected = `expected "host", "host:port" or "[ipv6]:port", got ${describeValue(value)}`;
  const trimmed = value.trim();
  if (trimmed === "") return expected;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    return `${expected}; write the address without a scheme`;
  }
  if (isIPv6(trimmed)) return undefined;
  let host: string;
  let port: string | undefined;
  if (trimmed.startsWith("[")) {
    const m = /^\[([^\]]*)\](?::([^:]*))?$/.exec(trimmed);
    if (!m || !isIPv6(m[1] ?? "")) return expected;
    host = m[1] as string;
    port = m[2];
  } else {
    const parts = trimmed.split(":");
    if (parts.length > 2) return expected;
    host = parts[0] as string;
    port = parts[1];
    const hostname =
      /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$/;
    if (!isIPv4(host) && (!hostname.test(host) || host.length > 253)) return expected;
  }
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
      return `${expected}; the port must be a number from 1 to 65535`;
    }
  }
  return undefined;
}

/**
 * A NATS server as `networking.nats.servers` lists it: `nats://host[:port]`, `tls://host[:port]`
 * or `host[:port]` / `[ipv6]:port` (the client's default port is 4222). Credentials belong in
 * `user`/`pass` or `token`: the client ignores them in a URL.
 */
export function checkNatsServer(value: string): string | undefined {
  const expected = `expected "nats://host:port", "tls://host:port" or "host:port", got ${describeValue(value)}`;
  const trimmed = value.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(trimmed);
  let address = trimmed;
  if (scheme) {
    const protocol = (scheme[1] as string).toLowerCase();
    if (protocol !== "nats" && protocol !== "tls") {
      return `${expected}; the scheme must be nats:// or tls://`;
    }
    address = trimmed.slice(scheme[0].length).replace(/\/$/, "");
    if (address.includes("@")) {
      return `${expected}; give credentials in user and pass, or token, not in the URL`;
    }
    if (/[/?#]/.test(address)) return `${expected}; a server URL has no path, query or fragment`;
  }
  const problem = checkNodeAddress(address);
  if (problem === undefined) return undefined;
  return problem.includes("the port must be")
    ? `${expected}; the port must be a number from 1 to 65535`
    : expected;
}

/**
 * `networking.nats.subject_prefix`: one token of a NATS subject, so no whitespace and none of
 * `.` (the separator), `*` and `>` (the wildcards); a leading `$` is NATS's own ($SYS, $JS).
 */
export function checkSubjectToken(value: string): string | undefined {
  const expected = `expected one NATS subject token (such as "aio" or "home-1"), got ${describeValue(value)}`;
  if (/[\s\p{Cc}]/u.test(value)) {
    return `${expected}; it contains whitespace or a control character`;
  }
  if (value.includes(".")) return `${expected}; "." separates tokens, so it cannot be in one`;
  if (/[*>]/.test(value)) return `${expected}; "*" and ">" are wildcards`;
  if (value.startsWith("$")) return `${expected}; subjects starting with "$" are reserved by NATS`;
  return undefined;
}

/** Reports a second item whose `key(item)` repeats an earlier one, at `at(item)`. */
function noDuplicates(
  items: unknown,
  ctx: z.RefinementCtx,
  what: string,
  listName: string,
  key: (item: Record<string, unknown>) => { value: unknown; at: string },
): void {
  if (!Array.isArray(items)) return;
  const seen = new Map<string, number>();
  items.forEach((item, index) => {
    if (item === null || typeof item !== "object") return;
    const { value, at } = key(item as Record<string, unknown>);
    if (typeof value !== "string" || value === "") return;
    const first = seen.get(value);
    if (first === undefined) {
      seen.set(value, index);
      return;
    }
    ctx.addIssue({
      code: "custom",
      path: [index, at],
      message: `duplicate ${what} ${JSON.stringify(value)}; ${listName}[${first}] already uses it`,
    });
  });
}

// ---------------------------------------------------------------------------
// The schemas.

type ObjectFactory = typeof z.strictObject;

function buildSchemas(object: ObjectFactory) {
  const resourceLimits = () =>
    object(Object.fromEntries(RESOURCE_LIMIT_KEYS.map((k) => [k, field(positive().optional())])));

  const pluginEntry = object({
    name: field(nonEmpty()),
    enabled: field(bool().default(true)),
    path: field(nonEmpty().optional()),
    arguments: field(z.unknown()),
    isolation: field(isolation().optional()),
    allowed_nodes: field(z.array(nonEmpty()).default([])),
    watch: field(bool().optional()),
    resource_limits: field(resourceLimits().optional()),
  });

  const general = object({
    hostname: field(str().default("")),
    plugin_package: field(str().default("plugins")),
    console_log_level: field(logLevel().default("INFO")),
    log_dir: field(str().default("logs")),
    lifecycle_timeout: field(positive().default(10)),
    drain_timeout: field(z.number().min(0).default(5)),
    watch: field(bool().default(false)),
    metrics: field(bool().default(true)),
  });

  /** A SHA-256 certificate fingerprint: 64 hex digits, colons allowed between pairs. */
  const fingerprint = () =>
    z
      .string()
      .refine((value) => /^[0-9a-fA-F]{64}$/.test(value.replaceAll(":", "")), {
        message: "expected a SHA-256 fingerprint (64 hex digits, colons allowed)",
      })
      .transform((value) => value.replaceAll(":", "").toUpperCase());

  const nodeAddress = z.string().superRefine((value, ctx) => {
    const problem = checkNodeAddress(value);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
  });

  const natsServer = z.string().superRefine((value, ctx) => {
    const problem = checkNatsServer(value);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
  });

  const subjectToken = nonEmpty().superRefine((value, ctx) => {
    const problem = checkSubjectToken(value);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
  });

  const nats = object({
    servers: field(z.array(natsServer).min(1).default(["nats://127.0.0.1:4222"])),
    user: field(str().default("")),
    pass: field(str().default("")),
    token: field(str().default("")),
    creds_file: field(str().default("")),
    ca_file: field(str().default("")),
    subject_prefix: field(subjectToken.default("aio")),
  }).superRefine((n, ctx) => {
    if (n.user !== "" && n.pass === "") {
      ctx.addIssue({
        code: "custom",
        path: ["pass"],
        message: "required when user is set (NATS user authentication needs user and pass)",
      });
    }
    if (n.pass !== "" && n.user === "") {
      ctx.addIssue({
        code: "custom",
        path: ["user"],
        message: "required when pass is set (NATS user authentication needs user and pass)",
      });
    }
    const ways = [
      ...(n.user !== "" || n.pass !== "" ? ["user and pass"] : []),
      ...(n.token !== "" ? ["token"] : []),
      ...(n.creds_file !== "" ? ["creds_file"] : []),
    ];
    if (ways.length > 1) {
      ctx.addIssue({
        code: "custom",
        path: [n.token !== "" ? "token" : "creds_file"],
        message: `give one way to log in to NATS, not ${ways.length}: ${ways.join(", ")}`,
      });
    }
  });

  const networking = object({
    enabled: field(bool().default(false)),
    transport: field(transport().default("channel")),
    node_ips: field(z.array(nodeAddress).default([])),
    port: field(z.number().int().min(0).max(65535).default(2510)),
    bind: field(str().default("")),
    discover_nodes: field(bool().default(true)),
    direct_discoverable: field(bool().default(true)),
    auto_discoverable: field(bool().default(true)),
    secret: field(str().default("")),
    cert_file: field(str().default("")),
    key_file: field(str().default("")),
    ca_file: field(str().default("")),
    allow_insecure: field(bool().default(false)),
    metrics_token: field(str().default("")),
    mcp: field(bool().default(false)),
    mcp_token: field(str().default("")),
    mcp_tag: field(nonEmpty().default("mcp")),
    heartbeat_interval: field(positive().default(10)),
    liveness_timeout: field(positive().default(30)),
    pinned_fingerprints: field(z.array(fingerprint()).default([])),
    allowed_hosts: field(z.array(nonEmpty()).default([])),
    max_body_bytes: field(
      z
        .number()
        .int()
        .min(1024)
        .default(1024 * 1024),
    ),
    max_calls_per_peer: field(z.number().int().min(1).default(256)),
    read_timeout: field(z.number().min(0.1).default(10)),
    nats: field(nats.prefault({})),
  }).superRefine((net, ctx) => {
    if (net.cert_file !== "" && net.key_file === "") {
      ctx.addIssue({
        code: "custom",
        path: ["key_file"],
        message: "required when cert_file is set (TLS needs both cert_file and key_file)",
      });
    }
    if (net.key_file !== "" && net.cert_file === "") {
      ctx.addIssue({
        code: "custom",
        path: ["cert_file"],
        message: "required when key_file is set (TLS needs both cert_file and key_file)",
      });
    }
  });

  const config = object({
    // A repeated plugin name is not a config error: the core refuses that one entry and
    // starts the rest.
    plugins: field(z.array(pluginEntry).default([])),
    general: field(general.prefault({})),
    networking: field(networking.prefault({})),
  });

  const argument = object({
    name: field(nonEmpty()),
    type: field(argumentType().default("any")),
    description: field(str().default("")),
    required: field(bool().default(false)),
    // Kept as written, null included: `default:` with nothing after it is a default of null.
    default: z.unknown().optional(),
  }).superRefine((arg, ctx) => {
    if (!Object.hasOwn(arg, "default") || arg.default === null || arg.default === undefined) return;
    if (!ARGUMENT_TYPES.includes(arg.type)) return;
    if (!matchesType(arg.default, arg.type)) {
      ctx.addIssue({
        code: "custom",
        path: ["default"],
        message: `expected a default of type ${arg.type}, got ${describeValue(arg.default)}`,
      });
    }
  });

  const endpoint = object({
    internal_name: field(nonEmpty()),
    access_name: field(nonEmpty().optional()),
    tags: field(z.array(str()).default([])),
    // The original's key: the endpoint receives what is published to topics matching it.
    topic: field(
      str()
        .superRefine((pattern, ctx) => {
          const wrong = patternProblem(pattern);
          if (wrong) ctx.addIssue({ code: "custom", message: wrong });
        })
        .optional(),
    ),
    remote: field(bool().default(false)),
    accessible_by_other_plugins: field(bool().default(false)),
    description: field(str().default("")),
    // What a call resolves to (a stream: its items), for `aio types` where no TypeScript says.
    returns: field(argumentType().optional()),
    arguments: field(z.array(argument).default([])).superRefine(
      (args, ctx) =>
        noDuplicates(args, ctx, "argument name", "arguments", (a) => ({
          value: a.name,
          at: "name",
        })),
      { when: () => true },
    ),
  });

  const version = z.union([z.string(), z.number()]).transform((v) => String(v).trim());

  const manifest = object({
    description: field(str().default("")),
    version: field(version.default("0.0.0")),
    remote: field(bool().default(false)),
    arguments: field(z.unknown()),
    endpoints: field(z.array(endpoint).default([])).superRefine(
      (endpoints, ctx) =>
        noDuplicates(endpoints, ctx, "access_name", "endpoints", (e) =>
          e.access_name !== undefined && e.access_name !== null
            ? { value: e.access_name, at: "access_name" }
            : { value: e.internal_name, at: "internal_name" },
        ),
      { when: () => true },
    ),
    isolation: field(isolation().optional()),
    resource_limits: field(resourceLimits().optional()),
    watch: field(bool().optional()),
  });

  return { config, manifest };
}

const strict = buildSchemas(z.strictObject);
const strip = buildSchemas(z.object as unknown as ObjectFactory);

export type ConfigData = z.output<typeof strict.config>;
export type ManifestData = z.output<typeof strict.manifest>;

// ---------------------------------------------------------------------------
// Running a schema.

function valueAt(data: unknown, path: KeyPath): { found: boolean; value: unknown } {
  let current: unknown = data;
  for (const segment of path) {
    if (current === null || typeof current !== "object") return { found: false, value: undefined };
    if (!Object.hasOwn(current, segment)) return { found: false, value: undefined };
    current = (current as Record<string | number, unknown>)[segment];
  }
  return { found: true, value: current };
}

function expectation(issue: z.core.$ZodIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type":
      return EXPECTED_NAMES[issue.expected] ?? `a value of type ${issue.expected}`;
    case "too_small": {
      if (issue.origin === "string") return "a non-empty string";
      if (issue.origin === "array") return `a list of at least ${issue.minimum} item(s)`;
      const bound = issue.inclusive ? "at least" : "greater than";
      return `a number ${bound} ${issue.minimum}`;
    }
    case "too_big": {
      if (issue.origin === "string") return `a string of at most ${issue.maximum} characters`;
      if (issue.origin === "array") return `a list of at most ${issue.maximum} item(s)`;
      const bound = issue.inclusive ? "at most" : "less than";
      return `a number ${bound} ${issue.maximum}`;
    }
    case "invalid_union":
      return "a string or a number";
    default:
      return undefined;
  }
}

function problemFor(issue: z.core.$ZodIssue, data: unknown): RawProblem {
  const path = issue.path.map((s) => (typeof s === "symbol" ? String(s) : s));
  if (issue.code === "custom") return { path, message: issue.message };
  const expected = expectation(issue);
  if (expected === undefined) return { path, message: issue.message };
  const at = valueAt(data, path);
  if (!at.found || at.value === undefined) {
    return { path, message: `required key is missing; expected ${expected}` };
  }
  if (at.value === null) {
    return { path, message: `required, but empty; expected ${expected}` };
  }
  // Ranges and integers: the type was right, so say only what was wrong with the value.
  let got = describeValue(at.value);
  if (issue.code === "invalid_type" && issue.expected === "int" && typeof at.value === "number") {
    got = `number ${at.value}`;
  }
  return { path, message: `expected ${expected}, got ${got}` };
}

/** The keys the object schema at `path` knows, for suggestions. */
function knownKeys(schema: z.ZodType, path: KeyPath): readonly string[] {
  const unwrap = (s: z.ZodType): z.ZodType => {
    let inner = s;
    for (;;) {
      if (inner instanceof z.ZodPipe) {
        inner = (inner.in instanceof z.ZodTransform ? inner.out : inner.in) as z.ZodType;
      } else if (
        inner instanceof z.ZodDefault ||
        inner instanceof z.ZodPrefault ||
        inner instanceof z.ZodOptional
      ) {
        inner = inner.unwrap() as z.ZodType;
      } else {
        return inner;
      }
    }
  };
  let current: z.ZodType | undefined = schema;
  for (const segment of path) {
    if (current === undefined) return [];
    current = unwrap(current);
    if (current instanceof z.ZodObject) {
      current = (current.shape as Record<string, z.ZodType>)[String(segment)];
    } else if (current instanceof z.ZodArray) {
      current = current.element as z.ZodType;
    } else {
      return [];
    }
  }
  if (current === undefined) return [];
  current = unwrap(current);
  return current instanceof z.ZodObject ? Object.keys(current.shape) : [];
}

export interface Validated<T> {
  /** Present when there were no errors. */
  data: T | undefined;
  errors: RawProblem[];
  /** Unknown keys, with a suggestion when one is close. */
  warnings: RawProblem[];
}

function run<T>(
  strictSchema: z.ZodType<T>,
  stripSchema: z.ZodType<T>,
  input: unknown,
): Validated<T> {
  const first = strictSchema.safeParse(input);
  if (first.success) return { data: first.data, errors: [], warnings: [] };
  const errors: RawProblem[] = [];
  const warnings: RawProblem[] = [];
  for (const issue of first.error.issues) {
    if (issue.code === "unrecognized_keys") {
      const base = issue.path.map((s) => (typeof s === "symbol" ? String(s) : s));
      const known = knownKeys(strictSchema, base);
      for (const key of issue.keys) {
        warnings.push({
          path: [...base, key],
          message: `unknown key${didYouMean(key, known)}`,
        });
      }
    } else {
      errors.push(problemFor(issue, input));
    }
  }
  if (errors.length > 0) return { data: undefined, errors, warnings };
  const second = stripSchema.safeParse(input);
  if (second.success) return { data: second.data, errors, warnings };
  // Not expected: the two variants differ only in unknown keys.
  return {
    data: undefined,
    errors: second.error.issues.map((issue) => problemFor(issue, input)),
    warnings,
  };
}

export function validateConfig(input: unknown): Validated<ConfigData> {
  return run(strict.config, strip.config as unknown as typeof strict.config, input);
}

export function validateManifest(input: unknown): Validated<ManifestData> {
  return run(strict.manifest, strip.manifest as unknown as typeof strict.manifest, input);
}
