/**
 * The shapes of config.yml and plugin_config.yml once read and checked.
 *
 * Keys keep the seed's snake_case spelling, so a config written as an object in code reads
 * exactly like the YAML file it stands for.
 */

export type LogLevelName = "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL";
export type Isolation = "none" | "worker";

/** Limits for a plugin running with `isolation: worker` (as node:worker_threads takes them). */
export interface ResourceLimits {
  maxOldGenerationSizeMb?: number;
  maxYoungGenerationSizeMb?: number;
  codeRangeSizeMb?: number;
  stackSizeMb?: number;
}

/** One entry of config.yml's `plugins` list. */
export interface PluginEntry {
  name: string;
  enabled: boolean;
  /** Absolute path of the plugin folder (default: `{plugin_package}/{name}`). */
  path: string;
  /** When set, replaces the `arguments` of plugin_config.yml. */
  arguments?: unknown;
  isolation?: Isolation;
  /** Hostnames allowed to call this plugin remotely; empty means all. */
  allowed_nodes: string[];
  watch?: boolean;
  resource_limits?: ResourceLimits;
}

export interface GeneralConfig {
  /** This node's name; the machine's hostname when empty in the file. */
  hostname: string;
  /** Absolute path of the folder holding plugins without an explicit `path`. */
  plugin_package: string;
  console_log_level: LogLevelName;
  /** Absolute path of the log folder; empty: no log file. */
  log_dir: string;
  /** Seconds `onLoad`, `onEnable` and `onDisable` may take before the plugin is failed. */
  lifecycle_timeout: number;
  /** Seconds calls in flight get to finish when their plugin is unloaded or the core closes. */
  drain_timeout: number;
  watch: boolean;
  /** Count calls, errors and latencies for `GET /metrics`. */
  metrics: boolean;
}

/** How nodes reach each other: the built-in node channel, or a NATS server (issue 14). */
export type TransportName = "channel" | "nats";

/** `networking.nats`: the NATS servers and how to log in to them, for `transport: nats`. */
export interface NatsConfig {
  /** `nats://host:port`, `tls://host:port` or `host:port` (port 4222 when left out). */
  servers: string[];
  /** User and password (both or neither), or a token, or a creds file: NATS's own login. */
  user: string;
  pass: string;
  token: string;
  /** Absolute path of a NATS credentials file (JWT and NKey seed); empty: none. */
  creds_file: string;
  /** Absolute path of the CA certificate the NATS servers' certificates are verified against. */
  ca_file: string;
  /** The first token of every subject this node uses; meshes with another prefix never meet. */
  subject_prefix: string;
}

export interface NetworkingConfig {
  enabled: boolean;
  /** `channel` (default) or `nats`. */
  transport: TransportName;
  /** `host` or `host:port` of nodes to contact at start. */
  node_ips: string[];
  port: number;
  /** Address to listen on; empty: 127.0.0.1 without a secret, 0.0.0.0 with one. */
  bind: string;
  discover_nodes: boolean;
  direct_discoverable: boolean;
  auto_discoverable: boolean;
  secret: string;
  cert_file: string;
  key_file: string;
  ca_file: string;
  allow_insecure: boolean;
  /** A bearer token `GET /metrics` also accepts when the node has a secret (Prometheus cannot sign). */
  metrics_token: string;
  /** Serve MCP over streamable HTTP at `/mcp` (docs/mcp.md). */
  mcp: boolean;
  /** The bearer token `/mcp` requires; "" with a secret: one derived from it (`aio mcp --token`). */
  mcp_token: string;
  /** The tag that makes an endpoint an MCP tool at `/mcp`. */
  mcp_tag: string;
  heartbeat_interval: number;
  liveness_timeout: number;
  /** SHA-256 fingerprints (uppercase hex) of peers' certificates to accept instead of a CA. */
  pinned_fingerprints: string[];
  /** Host header values accepted besides IP addresses, localhost and this node's hostname. */
  allowed_hosts: string[];
  /** Largest request body, and largest call on the channel, in bytes. */
  max_body_bytes: number;
  /** Calls one peer may have in progress at once; more are refused with OVERLOADED (429). */
  max_calls_per_peer: number;
  /** Seconds a client may take to send a request's headers, and again its whole request. */
  read_timeout: number;
  nats: NatsConfig;
}

/** config.yml after reading, with defaults applied and paths made absolute. */
export interface AioConfig {
  plugins: PluginEntry[];
  general: GeneralConfig;
  networking: NetworkingConfig;
  /** The config file, when the config came from one. */
  file: string | undefined;
  /** The folder relative paths were resolved against. */
  baseDir: string;
}

/** Argument types a manifest may declare. */
export type ArgumentType =
  | "int"
  | "float"
  | "number"
  | "str"
  | "string"
  | "bool"
  | "boolean"
  | "dict"
  | "object"
  | "list"
  | "array"
  | "any";

export interface ManifestArgument {
  name: string;
  type: ArgumentType;
  description: string;
  required: boolean;
  /** Present when the manifest gives a default. */
  default?: unknown;
}

export interface ManifestEndpoint {
  /** The line of plugin_config.yml that declares it, when read from a file. */
  line?: number | undefined;
  internal_name: string;
  access_name: string;
  tags: string[];
  /** A subscription pattern: the endpoint receives what is published to matching topics. */
  topic?: string | undefined;
  /** The result's type (a stream's items), for `aio types` where the plugin is not TypeScript. */
  returns?: ArgumentType | undefined;
  remote: boolean;
  accessible_by_other_plugins: boolean;
  description: string;
  arguments: ManifestArgument[];
}

/** plugin_config.yml after reading. */
export interface PluginManifest {
  description: string;
  version: string;
  remote: boolean;
  /** Passed to `onLoad`. */
  arguments: unknown;
  endpoints: ManifestEndpoint[];
  isolation?: Isolation;
  resource_limits?: ResourceLimits;
  watch?: boolean;
  /** The manifest file. */
  file: string;
}

/**
 * config.yml's data given as an object: the same keys as the file, every one optional.
 * Relative paths in it resolve against `baseDir`, or the working directory.
 */
export interface ConfigObject {
  plugins?: Array<{
    name: string;
    enabled?: boolean;
    path?: string;
    arguments?: unknown;
    isolation?: Isolation;
    allowed_nodes?: string[];
    watch?: boolean;
    resource_limits?: ResourceLimits;
  }>;
  general?: Partial<Omit<GeneralConfig, "console_log_level">> & {
    console_log_level?: LogLevelName | Lowercase<LogLevelName>;
  };
  networking?: Partial<Omit<NetworkingConfig, "nats">> & { nats?: Partial<NatsConfig> };
  baseDir?: string;
}
