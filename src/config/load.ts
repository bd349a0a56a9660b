/**
 * Reading config.yml and plugin_config.yml.
 *
 * A file and an object both go through the schemas of schema.ts, so they behave the same; a
 * file adds line numbers. Every problem of one file is collected and thrown as one ConfigError;
 * unknown keys are only warnings, with a suggestion when a known key is close.
 */

import { readFileSync, statSync } from "node:fs";
import { hostname as machineHostname } from "node:os";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { ConfigError, type ConfigErrorCode } from "../errors.js";
import {
  type ConfigData,
  formatKeyPath,
  type KeyPath,
  type ManifestData,
  type RawProblem,
  type Validated,
  validateConfig,
  validateManifest,
} from "./schema.js";
import { looksWeak, tooShort } from "./secret.js";
import type {
  AioConfig,
  ConfigObject,
  ManifestArgument,
  ManifestEndpoint,
  PluginEntry,
  PluginManifest,
  ResourceLimits,
} from "./types.js";
import { parseYaml } from "./yaml.js";

/** Something worth telling the user that does not stop the config from loading. */
export interface ConfigWarning {
  /** Absolute path of the file, when the config came from one. */
  file: string | undefined;
  line: number | undefined;
  /** Key path such as `general.consol_log_level`; empty for the file as a whole. */
  key: string;
  message: string;
}

interface Problem {
  file?: string | undefined;
  line?: number | undefined;
  key: string;
  message: string;
}

/** The path as it should be shown: relative to the working directory when inside it. */
function displayPath(file: string): string {
  if (!isAbsolute(file)) return file;
  const rel = relative(process.cwd(), file);
  if (rel !== "" && !rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel)) return rel;
  return file;
}

/**
 * `<file>:<line> <key>: <message>`; the file and line are left out when unknown, the key when
 * empty. The file is shown relative to the working directory when it is inside it.
 */
export function formatProblem(p: {
  file?: string | undefined;
  line?: number | undefined;
  key: string;
  message: string;
}): string {
  let where = p.file === undefined ? "" : displayPath(p.file);
  if (p.file !== undefined && p.line !== undefined) where += `:${p.line}`;
  const what = p.key === "" ? p.message : `${p.key}: ${p.message}`;
  return where === "" ? what : `${where} ${what}`;
}

function fail(code: ConfigErrorCode, problems: readonly Problem[]): never {
  const texts = problems.map(formatProblem);
  const first = problems[0] ?? { key: "", message: "invalid configuration" };
  throw new ConfigError(
    code,
    texts.join("\n"),
    { file: first.file, line: first.line, key: first.key },
    { problems: texts },
  );
}

// ---------------------------------------------------------------------------
// Shared steps.

interface Source {
  /** Absolute path; undefined for an object. */
  file: string | undefined;
  lineOf: (path: KeyPath) => number | undefined;
}

const OBJECT_SOURCE: Source = { file: undefined, lineOf: () => undefined };

function located(source: Source, p: RawProblem): Problem {
  return {
    file: source.file,
    line: source.lineOf(p.path),
    key: formatKeyPath(p.path),
    message: p.message,
  };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Checks the top level, then runs the schema; throws with every problem found. */
function check<T>(
  data: unknown,
  source: Source,
  validate: (input: unknown) => Validated<T>,
  warnings: ConfigWarning[],
): T {
  const input = data === null || data === undefined ? {} : data;
  if (!isMapping(input)) {
    fail("CONFIG_INVALID", [
      located(source, {
        path: [],
        message: `expected a mapping of keys to values at the top level, got ${topLevelKind(input)}`,
      }),
    ]);
  }
  const result = validate(input);
  const found = result.warnings.map((w) => located(source, w));
  found.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  for (const p of found) {
    warnings.push({ file: p.file, line: p.line, key: p.key, message: p.message });
  }
  if (result.data === undefined || result.errors.length > 0) {
    const problems = result.errors.map((e) => located(source, e));
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    fail("CONFIG_INVALID", problems);
  }
  return result.data;
}

function topLevelKind(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return `string ${JSON.stringify(value.slice(0, 40))}`;
  return `${typeof value} ${String(value)}`;
}

/** Reads and parses a YAML file; throws when it is missing, unreadable or not valid YAML. */
function readYamlFile(
  file: string,
  missing: { code: ConfigErrorCode; message: string },
  numbersAsText: readonly KeyPath[],
  warnings: ConfigWarning[],
): { data: unknown; source: Source } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The message names the file already, so it is not prefixed with it again.
    if (code === "ENOENT" || code === "ENOTDIR") {
      throw new ConfigError(missing.code, missing.message, { file }, { cause: err });
    }
    const why = code === "EISDIR" ? "it is a folder" : (err as Error).message;
    throw new ConfigError(
      missing.code,
      `cannot read ${displayPath(file)}: ${why}`,
      { file },
      {
        cause: err,
      },
    );
  }
  const parsed = parseYaml(text, { numbersAsText });
  const source: Source = { file, lineOf: parsed.lineOf };
  for (const w of parsed.warnings) {
    warnings.push({ file, line: w.line, key: "", message: `YAML warning: ${w.message}` });
  }
  if (parsed.errors.length > 0) {
    fail(
      "CONFIG_INVALID",
      parsed.errors.map((e) => ({ file, line: e.line, key: "", message: e.message })),
    );
  }
  return { data: parsed.data, source };
}

// ---------------------------------------------------------------------------
// config.yml

function resourceLimits(
  limits: Partial<Record<keyof ResourceLimits, number | undefined>> | undefined,
): ResourceLimits | undefined {
  if (limits === undefined) return undefined;
  const out: ResourceLimits = {};
  for (const [key, value] of Object.entries(limits)) {
    if (value !== undefined) out[key as keyof ResourceLimits] = value;
  }
  return out;
}

function buildConfig(
  data: ConfigData,
  baseDir: string,
  file: string | undefined,
  source: Source,
  warnings: ConfigWarning[],
): AioConfig {
  const warn = (path: KeyPath, message: string) => {
    warnings.push({ file, line: source.lineOf(path), key: formatKeyPath(path), message });
  };
  const pluginPackage = resolve(baseDir, data.general.plugin_package);

  const plugins = data.plugins.map((p): PluginEntry => {
    const entry: PluginEntry = {
      name: p.name,
      enabled: p.enabled,
      path: p.path === undefined ? join(pluginPackage, p.name) : resolve(baseDir, p.path),
      allowed_nodes: p.allowed_nodes,
    };
    if (p.arguments !== undefined) entry.arguments = p.arguments;
    if (p.isolation !== undefined) entry.isolation = p.isolation;
    if (p.watch !== undefined) entry.watch = p.watch;
    const limits = resourceLimits(p.resource_limits);
    if (limits !== undefined) entry.resource_limits = limits;
    return entry;
  });

  const net = data.networking;
  if (net.auto_discoverable && !net.direct_discoverable) {
    warn(
      ["networking", "direct_discoverable"],
      "set to false, but auto_discoverable: true forces it to true",
    );
  }
  if (net.liveness_timeout <= net.heartbeat_interval) {
    warn(
      ["networking", "liveness_timeout"],
      `${net.liveness_timeout}s is not longer than heartbeat_interval (${net.heartbeat_interval}s); ` +
        "live nodes may be marked down between heartbeats",
    );
  }
  const fileAt = (value: string) => (value === "" ? "" : resolve(baseDir, value));
  const nats = {
    ...net.nats,
    servers: net.nats.servers.map((server) => server.trim()),
    creds_file: fileAt(net.nats.creds_file),
    ca_file: fileAt(net.nats.ca_file),
  };
  checkFilesExist(
    [
      [["networking", "nats", "creds_file"], nats.creds_file],
      [["networking", "nats", "ca_file"], nats.ca_file],
    ],
    source,
  );
  const secret = net.secret !== "" ? net.secret : (process.env.AIO_SECRET ?? "");
  for (const key of ["metrics_token", "mcp_token"] as const) {
    const token = net[key];
    if (token === "" || token.length >= 16) continue;
    throw new ConfigError(
      "CONFIG_INVALID",
      `networking.${key} is ${token.length} characters; use at least 16 (\`aio secret\` prints a good one)`,
      { file, line: source.lineOf(["networking", key]), key: `networking.${key}` },
    );
  }
  if (net.enabled) checkSecret(secret, net.secret !== "", file, source, warn);

  return {
    plugins,
    general: {
      hostname: data.general.hostname.trim() === "" ? machineHostname() : data.general.hostname,
      plugin_package: pluginPackage,
      console_log_level: data.general.console_log_level,
      log_dir: data.general.log_dir === "" ? "" : resolve(baseDir, data.general.log_dir),
      lifecycle_timeout: data.general.lifecycle_timeout,
      drain_timeout: data.general.drain_timeout,
      watch: data.general.watch,
      metrics: data.general.metrics,
    },
    networking: {
      enabled: net.enabled,
      node_ips: net.node_ips.map((ip) => ip.trim()),
      port: net.port,
      bind: net.bind,
      discover_nodes: net.discover_nodes,
      direct_discoverable: net.direct_discoverable || net.auto_discoverable,
      auto_discoverable: net.auto_discoverable,
      secret,
      cert_file: fileAt(net.cert_file),
      key_file: fileAt(net.key_file),
      ca_file: fileAt(net.ca_file),
      allow_insecure: net.allow_insecure,
      metrics_token: net.metrics_token,
      mcp: net.mcp,
      mcp_token: net.mcp_token,
      mcp_tag: net.mcp_tag,
      heartbeat_interval: net.heartbeat_interval,
      liveness_timeout: net.liveness_timeout,
      pinned_fingerprints: net.pinned_fingerprints,
      allowed_hosts: net.allowed_hosts,
      max_body_bytes: net.max_body_bytes,
      max_calls_per_peer: net.max_calls_per_peer,
      read_timeout: net.read_timeout,
      transport: net.transport,
      nats,
    },
    file,
    baseDir,
  };
}

/**
 * Refuses files the config names that are not there (or are folders), each on its own line;
 * `files` holds each key's path and its absolute file, empty when not given.
 */
function checkFilesExist(files: ReadonlyArray<[KeyPath, string]>, source: Source): void {
  const problems: Problem[] = [];
  for (const [path, file] of files) {
    if (file === "") continue;
    let why: string | undefined;
    try {
      if (statSync(file).isDirectory()) why = `${displayPath(file)} is a folder, not a file`;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      why =
        code === "ENOENT" || code === "ENOTDIR"
          ? `file not found: ${displayPath(file)}`
          : `cannot read ${displayPath(file)}: ${(err as Error).message}`;
    }
    if (why !== undefined) problems.push(located(source, { path, message: why }));
  }
  if (problems.length > 0) fail("CONFIG_INVALID", problems);
}

/**
 * Refuses a secret too short to be safe, with how to make a good one, and warns of one that is
 * long enough but plainly weak. The secret comes from the file or from AIO_SECRET.
 */
function checkSecret(
  secret: string,
  inFile: boolean,
  file: string | undefined,
  source: Source,
  warn: (path: KeyPath, message: string) => void,
): void {
  const where = inFile ? "networking.secret" : "the AIO_SECRET environment variable";
  const short = tooShort(secret);
  if (short !== undefined) {
    throw new ConfigError(
      "CONFIG_INVALID",
      `${where} ${short}`,
      inFile
        ? { file, line: source.lineOf(["networking", "secret"]), key: "networking.secret" }
        : { file, key: "networking.secret" },
    );
  }
  const weak = looksWeak(secret);
  if (weak !== undefined) warn(["networking", "secret"], `${inFile ? "it" : "AIO_SECRET"} ${weak}`);
}

/**
 * Reads config.yml: defaults filled in, relative paths made absolute against the file's folder.
 * Throws a ConfigError (code CONFIG_INVALID) listing every problem of the file.
 */
export function loadConfigFile(path: string): { config: AioConfig; warnings: ConfigWarning[] } {
  const file = resolve(path);
  const warnings: ConfigWarning[] = [];
  const { data, source } = readYamlFile(
    file,
    { code: "CONFIG_INVALID", message: `config file not found: ${displayPath(file)}` },
    [],
    warnings,
  );
  const checked = check(data, source, validateConfig, warnings);
  const config = buildConfig(checked, dirname(file), file, source, warnings);
  return { config, warnings };
}

/**
 * The same as loadConfigFile for data given as an object. Relative paths resolve against
 * `baseDir`, else `data.baseDir`, else the working directory.
 */
export function resolveConfigObject(
  data: ConfigObject,
  baseDir?: string,
): { config: AioConfig; warnings: ConfigWarning[] } {
  const warnings: ConfigWarning[] = [];
  let input: unknown = data;
  let base = baseDir;
  if (isMapping(data) && Object.hasOwn(data, "baseDir")) {
    const { baseDir: given, ...rest } = data as ConfigObject & Record<string, unknown>;
    if (given !== undefined && typeof given !== "string") {
      fail("CONFIG_INVALID", [
        { key: "baseDir", message: `expected a string, got ${topLevelKind(given)}` },
      ]);
    }
    base ??= given;
    input = rest;
  }
  const checked = check(input, OBJECT_SOURCE, validateConfig, warnings);
  const config = buildConfig(
    checked,
    resolve(base ?? process.cwd()),
    undefined,
    OBJECT_SOURCE,
    warnings,
  );
  return { config, warnings };
}

// ---------------------------------------------------------------------------
// plugin_config.yml

const MANIFEST_FILE = "plugin_config.yml";

function buildManifest(data: ManifestData, file: string, source: Source): PluginManifest {
  const endpoints = data.endpoints.map(
    (e, index): ManifestEndpoint => ({
      line: source.lineOf(["endpoints", index, "internal_name"]),
      internal_name: e.internal_name,
      access_name: e.access_name ?? e.internal_name,
      tags: e.tags,
      topic: e.topic,
      returns: e.returns,
      remote: e.remote,
      accessible_by_other_plugins: e.accessible_by_other_plugins,
      description: e.description,
      arguments: e.arguments.map((a) => {
        const arg: ManifestArgument = {
          name: a.name,
          type: a.type,
          description: a.description,
          required: a.required,
        };
        if (Object.hasOwn(a, "default")) arg.default = a.default;
        return arg;
      }),
    }),
  );
  const manifest: PluginManifest = {
    description: data.description,
    version: data.version,
    remote: data.remote,
    arguments: data.arguments,
    endpoints,
    file,
  };
  if (data.isolation !== undefined) manifest.isolation = data.isolation;
  const limits = resourceLimits(data.resource_limits);
  if (limits !== undefined) manifest.resource_limits = limits;
  if (data.watch !== undefined) manifest.watch = data.watch;
  return manifest;
}

/**
 * Reads `<pluginDir>/plugin_config.yml`. A missing file throws a ConfigError of code
 * PLUGIN_LOAD_FAILED; an invalid one, CONFIG_INVALID with every problem of the file.
 */
export function loadManifest(pluginDir: string): {
  manifest: PluginManifest;
  warnings: ConfigWarning[];
} {
  const dir = resolve(pluginDir);
  const file = join(dir, MANIFEST_FILE);
  const warnings: ConfigWarning[] = [];
  let dirExists = false;
  try {
    dirExists = statSync(dir).isDirectory();
  } catch {
    dirExists = false;
  }
  const missing = dirExists
    ? `${MANIFEST_FILE} not found in ${displayPath(dir)}`
    : `${MANIFEST_FILE} not found in ${displayPath(dir)} (the folder does not exist)`;
  const { data, source } = readYamlFile(
    file,
    { code: "PLUGIN_LOAD_FAILED", message: missing },
    [["version"]],
    warnings,
  );
  const checked = check(data, source, validateManifest, warnings);
  return { manifest: buildManifest(checked, file, source), warnings };
}
