import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import {
  formatProblem,
  loadConfigFile,
  loadManifest,
  resolveConfigObject,
} from "../src/config/load.js";
import type { ConfigObject } from "../src/config/types.js";
import { ConfigError } from "../src/errors.js";

const root = mkdtempSync(join(tmpdir(), "aio-config-test-"));
let counter = 0;

afterAll(() => rmSync(root, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

/** A fresh folder holding `config.yml` with `text`; returns the file's path. */
function writeConfig(text: string, name = "config.yml"): string {
  const dir = join(root, `case-${++counter}`, "conf");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** A fresh plugin folder holding plugin_config.yml with `text`; returns the folder. */
function writeManifest(text: string): string {
  const dir = join(root, `plugin-${++counter}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "plugin_config.yml"), text);
  return dir;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

// The seed's config.yml ("config.yml Structure"), unchanged.
const SEED_CONFIG = `# Plugin Configuration
plugins:
  - name: PluginA
    enabled: true
    path: ./plugins_test/pluginA_v1  # Optional: explicit path
  - name: PluginB
    enabled: true  # Path auto-resolves to plugin_package/PluginB

# General Settings
general:
    hostname: ""  # Unique identifier for this node
    plugin_package: plugins_test  # Base directory for plugins
    console_log_level: "INFO"  # DEBUG, INFO, WARNING, ERROR

# Networking Configuration
networking:
    enabled: False
    node_ips: []  # List of known node IP addresses
    port: 2510
    discover_nodes: True
    direct_discoverable: True
    auto_discoverable: True
`;

// The seed's networking example, unchanged (note the trailing space after "node_ips:").
const SEED_NETWORKING = `networking:
    enabled: True
    node_ips: 
      - "192.168.1.100"
      - "192.168.1.101"
    port: 2510
    discover_nodes: True
    direct_discoverable: True
    auto_discoverable: True
`;

// The seed's plugin_config.yml ("Creating a Plugin"), unchanged.
const SEED_MANIFEST = `description: My custom plugin
version: 1.0.0
remote: True
arguments: []
endpoints:
  - internal_name: my_method
    access_name: my_method
    tags: []
    remote: True
    accessible_by_other_plugins: True
    description: Adds two numbers
    arguments:
      - name: arg1
        type: int
        description: First number
      - name: arg2
        type: int
        description: Second number
`;

// In the style of the original project's example plugins: empty values everywhere.
const ORIGINAL_STYLE_MANIFEST = `description:
version: 1.0
remote: True
arguments:
endpoints:
  - internal_name: print_hello
    access_name: hello
    tags:
    remote: True
    accessible_by_other_plugins: True
    description:
    arguments:
  - internal_name: add
    access_name: add
    tags:
    remote: False
    accessible_by_other_plugins: False
    description: Adds
    arguments:
      - name: a
        type: int
        description:
      - name: b
        type: int
        description:
`;

describe("config.yml from the seed", () => {
  it("loads the seed's example config unchanged", () => {
    const file = writeConfig(SEED_CONFIG);
    const dir = join(file, "..");
    const { config, warnings } = loadConfigFile(file);
    expect(warnings).toEqual([]);
    expect(config.file).toBe(file);
    expect(config.baseDir).toBe(dir);
    expect(config.plugins).toEqual([
      {
        name: "PluginA",
        enabled: true,
        path: join(dir, "plugins_test", "pluginA_v1"),
        allowed_nodes: [],
      },
      {
        name: "PluginB",
        enabled: true,
        path: join(dir, "plugins_test", "PluginB"),
        allowed_nodes: [],
      },
    ]);
    expect(config.plugins[0]?.arguments).toBeUndefined();
    expect(config.general).toEqual({
      hostname: hostname(),
      plugin_package: join(dir, "plugins_test"),
      console_log_level: "INFO",
      log_dir: join(dir, "logs"),
      lifecycle_timeout: 10,
      drain_timeout: 5,
      watch: false,
      metrics: true,
    });
    expect(config.networking).toMatchObject({
      enabled: false,
      node_ips: [],
      port: 2510,
      discover_nodes: true,
      direct_discoverable: true,
      auto_discoverable: true,
    });
  });

  it("loads the seed's networking example unchanged", () => {
    const { config, warnings } = loadConfigFile(writeConfig(SEED_NETWORKING));
    expect(warnings).toEqual([]);
    expect(config.networking.enabled).toBe(true);
    expect(config.networking.node_ips).toEqual(["192.168.1.100", "192.168.1.101"]);
    expect(config.plugins).toEqual([]);
  });

  it("accepts every key the contract lists", () => {
    const { config, warnings } = loadConfigFile(
      writeConfig(`plugins:
  - name: PluginA
    enabled: true
    path: ./plugins_test/pluginA_v1
    arguments: {}
    isolation: none
    allowed_nodes: []
general:
  hostname: ""
  plugin_package: plugins_test
  console_log_level: INFO
  log_dir: logs
networking:
  enabled: false
  node_ips: []
  port: 2510
  bind: ""
  discover_nodes: true
  direct_discoverable: true
  auto_discoverable: true
  secret: ""
  cert_file: ""
  key_file: ""
  ca_file: ""
  allow_insecure: false
  heartbeat_interval: 10
  liveness_timeout: 30
  transport: channel                  # added: channel (node to node, built in) | nats
  nats:                               # added; used when transport is nats
    servers: ["nats://127.0.0.1:4222"]
    user: ""                          # or token, or creds_file (NATS's own authentication)
    pass: ""
    token: ""
    creds_file: ""
    ca_file: ""                       # TLS to the NATS servers
    subject_prefix: aio               # nodes with another prefix never see each other
`),
    );
    expect(warnings).toEqual([]);
    expect(config.plugins[0]?.arguments).toEqual({});
    expect(config.plugins[0]?.isolation).toBe("none");
  });
});

describe("plugin_config.yml from the seed", () => {
  it("loads the seed's example manifest unchanged", () => {
    const dir = writeManifest(SEED_MANIFEST);
    const { manifest, warnings } = loadManifest(dir);
    expect(warnings).toEqual([]);
    expect(manifest).toEqual({
      description: "My custom plugin",
      version: "1.0.0",
      remote: true,
      arguments: [],
      endpoints: [
        {
          line: 6,
          internal_name: "my_method",
          access_name: "my_method",
          tags: [],
          remote: true,
          accessible_by_other_plugins: true,
          description: "Adds two numbers",
          arguments: [
            { name: "arg1", type: "int", description: "First number", required: false },
            { name: "arg2", type: "int", description: "Second number", required: false },
          ],
        },
      ],
      file: join(dir, "plugin_config.yml"),
    });
    expect("default" in (manifest.endpoints[0]?.arguments[0] ?? {})).toBe(false);
  });

  it("loads a manifest in the original's style: empty tags, arguments and descriptions", () => {
    const { manifest, warnings } = loadManifest(writeManifest(ORIGINAL_STYLE_MANIFEST));
    expect(warnings).toEqual([]);
    expect(manifest.description).toBe("");
    expect(manifest.version).toBe("1.0");
    expect(manifest.remote).toBe(true);
    expect(manifest.arguments).toBeUndefined();
    expect(manifest.endpoints[0]).toEqual({
      line: expect.any(Number),
      internal_name: "print_hello",
      access_name: "hello",
      tags: [],
      remote: true,
      accessible_by_other_plugins: true,
      description: "",
      arguments: [],
    });
    expect(manifest.endpoints[1]?.arguments).toEqual([
      { name: "a", type: "int", description: "", required: false },
      { name: "b", type: "int", description: "", required: false },
    ]);
  });

  it("keeps version as written", () => {
    const version = (text: string) => loadManifest(writeManifest(text)).manifest.version;
    expect(version("version: 1.0\n")).toBe("1.0");
    expect(version("version: 1.10\n")).toBe("1.10");
    expect(version("version: 0.0.1\n")).toBe("0.0.1");
    expect(version("version: 2\n")).toBe("2");
    expect(version('version: "3.0"\n')).toBe("3.0");
    expect(version("version: 1.0 # first release\n")).toBe("1.0");
    expect(version("description: x\n")).toBe("0.0.0");
  });

  it("fills in manifest defaults", () => {
    const { manifest } = loadManifest(
      writeManifest(`endpoints:
  - internal_name: run
    arguments:
      - name: x
      - name: y
        type: Str
        required: true
        default: hi
      - name: z
        default:
`),
    );
    expect(manifest).toMatchObject({ description: "", version: "0.0.0", remote: false });
    expect(manifest.arguments).toBeUndefined();
    const [endpoint] = manifest.endpoints;
    expect(endpoint).toMatchObject({
      access_name: "run",
      tags: [],
      remote: false,
      accessible_by_other_plugins: false,
      description: "",
    });
    expect(endpoint?.arguments[0]).toEqual({
      name: "x",
      type: "any",
      description: "",
      required: false,
    });
    expect(endpoint?.arguments[1]).toEqual({
      name: "y",
      type: "str",
      description: "",
      required: true,
      default: "hi",
    });
    // `default:` with nothing after it is a default of null, and it is kept.
    expect(endpoint?.arguments[2]).toHaveProperty("default", null);
  });

  it("loads an empty manifest as all defaults", () => {
    const dir = writeManifest("");
    expect(loadManifest(dir).manifest).toEqual({
      description: "",
      version: "0.0.0",
      remote: false,
      arguments: undefined,
      endpoints: [],
      file: join(dir, "plugin_config.yml"),
    });
  });

  it("keeps a mapping of plugin arguments", () => {
    const { manifest } = loadManifest(writeManifest("arguments:\n  greeting: hi\n  times: 2\n"));
    expect(manifest.arguments).toEqual({ greeting: "hi", times: 2 });
  });
});

describe("config.yml defaults and paths", () => {
  it("treats an empty file, a comment-only file and null sections as all defaults", () => {
    for (const text of ["", "# nothing here\n", "plugins:\ngeneral:\nnetworking:\n"]) {
      const file = writeConfig(text);
      const dir = join(file, "..");
      const { config, warnings } = loadConfigFile(file);
      expect(warnings).toEqual([]);
      expect(config.plugins).toEqual([]);
      expect(config.general).toEqual({
        hostname: hostname(),
        plugin_package: join(dir, "plugins"),
        console_log_level: "INFO",
        log_dir: join(dir, "logs"),
        lifecycle_timeout: 10,
        drain_timeout: 5,
        watch: false,
        metrics: true,
      });
      expect(config.networking).toEqual({
        enabled: false,
        node_ips: [],
        port: 2510,
        bind: "",
        discover_nodes: true,
        direct_discoverable: true,
        auto_discoverable: true,
        secret: "",
        cert_file: "",
        key_file: "",
        ca_file: "",
        allow_insecure: false,
        metrics_token: "",
        mcp: false,
        mcp_token: "",
        mcp_tag: "mcp",
        heartbeat_interval: 10,
        liveness_timeout: 30,
        pinned_fingerprints: [],
        allowed_hosts: [],
        max_body_bytes: 1048576,
        max_calls_per_peer: 256,
        read_timeout: 10,
        transport: "channel",
        nats: {
          servers: ["nats://127.0.0.1:4222"],
          user: "",
          pass: "",
          token: "",
          creds_file: "",
          ca_file: "",
          subject_prefix: "aio",
        },
      });
    }
  });

  it("defaults each plugin entry", () => {
    const { config } = loadConfigFile(writeConfig("plugins:\n  - name: A\n    enabled:\n"));
    expect(config.plugins[0]).toEqual({
      name: "A",
      enabled: true,
      path: join(config.baseDir, "plugins", "A"),
      allowed_nodes: [],
    });
  });

  it("resolves relative paths against the config file's folder, not the working directory", () => {
    const file = writeConfig(`plugins:
  - name: A
    path: ../elsewhere/A
  - name: B
    path: /opt/plugins/B
  - name: C
general:
  plugin_package: my_plugins
  log_dir: var/logs
networking:
  cert_file: tls/cert.pem
  key_file: tls/key.pem
  ca_file: /etc/ca.pem
`);
    const dir = join(file, "..");
    expect(dir).not.toBe(process.cwd());
    const { config } = loadConfigFile(file);
    expect(config.plugins.map((p) => p.path)).toEqual([
      join(dir, "..", "elsewhere", "A"),
      "/opt/plugins/B",
      join(dir, "my_plugins", "C"),
    ]);
    expect(config.general.plugin_package).toBe(join(dir, "my_plugins"));
    expect(config.general.log_dir).toBe(join(dir, "var", "logs"));
    expect(config.networking.cert_file).toBe(join(dir, "tls", "cert.pem"));
    expect(config.networking.key_file).toBe(join(dir, "tls", "key.pem"));
    expect(config.networking.ca_file).toBe("/etc/ca.pem");
  });

  it("keeps an empty log_dir (no log file) and a given hostname", () => {
    const { config } = loadConfigFile(
      writeConfig('general:\n  log_dir: ""\n  hostname: node-1\n  drain_timeout: 0\n'),
    );
    expect(config.general.log_dir).toBe("");
    expect(config.general.hostname).toBe("node-1");
    expect(config.general.drain_timeout).toBe(0);
  });

  it("reads console_log_level case-insensitively and accepts WARN", () => {
    const level = (v: string) =>
      loadConfigFile(writeConfig(`general:\n  console_log_level: ${v}\n`)).config.general
        .console_log_level;
    expect(level("debug")).toBe("DEBUG");
    expect(level("Warning")).toBe("WARNING");
    expect(level("warn")).toBe("WARNING");
    expect(level("critical")).toBe("CRITICAL");
  });

  it("accepts port 0 (an ephemeral port)", () => {
    expect(loadConfigFile(writeConfig("networking:\n  port: 0\n")).config.networking.port).toBe(0);
  });

  it("keeps the arguments, isolation, allowed_nodes, watch and resource_limits of a plugin", () => {
    const { config } = loadConfigFile(
      writeConfig(`plugins:
  - name: A
    arguments: [1, 2]
    isolation: worker
    allowed_nodes: [node-2]
    watch: true
    resource_limits:
      maxOldGenerationSizeMb: 64
`),
    );
    expect(config.plugins[0]).toMatchObject({
      arguments: [1, 2],
      isolation: "worker",
      allowed_nodes: ["node-2"],
      watch: true,
      resource_limits: { maxOldGenerationSizeMb: 64 },
    });
  });
});

describe("errors name file, line and key", () => {
  it("reports a missing config file", () => {
    const file = join(root, "no-such-dir", "config.yml");
    const err = configError(() => loadConfigFile(file));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toBe(`config file not found: ${file}`);
    expect(err.file).toBe(file);
  });

  it("reports a missing plugin_config.yml as PLUGIN_LOAD_FAILED", () => {
    const dir = join(root, `empty-plugin-${++counter}`);
    mkdirSync(dir);
    const err = configError(() => loadManifest(dir));
    expect(err.code).toBe("PLUGIN_LOAD_FAILED");
    expect(err.message).toBe(`plugin_config.yml not found in ${dir}`);
  });

  it("reports a YAML syntax error with file and line", () => {
    const file = writeConfig("plugins:\n  - name: A\n    enabled: [true\ngeneral:\n  x: 1\n");
    const err = configError(() => loadConfigFile(file));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.file).toBe(file);
    expect(err.line).toBeTypeOf("number");
    expect(err.message).toMatch(new RegExp(`^${escapeRegExp(file)}:\\d+ YAML syntax error: \\S`));
    expect(err.message.split("\n")[0]).not.toMatch(/at line/);
  });

  it("reports a YAML syntax error on the line it happens", () => {
    const file = writeConfig("general:\n  hostname: a\n  log_dir: 'unterminated\nnetworking:\n");
    const err = configError(() => loadConfigFile(file));
    expect(err.line).toBeGreaterThanOrEqual(3);
    expect(err.message).toContain("YAML syntax error");
  });

  it("reports duplicate keys", () => {
    const file = writeConfig("general:\n  hostname: a\n  hostname: b\n");
    const err = configError(() => loadConfigFile(file));
    expect(err.problems[0]).toMatch(
      new RegExp(`^${escapeRegExp(file)}:3 YAML syntax error: .*unique`),
    );
  });

  it("reports a top level that is not a mapping", () => {
    const file = writeConfig("- name: A\n- name: B\n");
    const err = configError(() => loadConfigFile(file));
    expect(err.message).toBe(
      `${file}:1 expected a mapping of keys to values at the top level, got a list`,
    );
  });

  it("reports a wrong type in config.yml with file, line and key path", () => {
    const file = writeConfig(`plugins:
  - name: A
    enabled: true
  - name: B
    enabled: yes
`);
    const err = configError(() => loadConfigFile(file));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toBe(`${file}:5 plugins[1].enabled: expected a boolean, got string "yes"`);
    expect(err.file).toBe(file);
    expect(err.line).toBe(5);
    expect(err.key).toBe("plugins[1].enabled");
    expect(err.problems).toEqual([err.message]);
  });

  it("reports a wrong type in plugin_config.yml with file, line and key path", () => {
    const dir = writeManifest(`description: x
endpoints:
  - internal_name: a
    remote: "no"
    tags: [1]
`);
    const file = join(dir, "plugin_config.yml");
    const err = configError(() => loadManifest(dir));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.problems).toEqual([
      `${file}:4 endpoints[0].remote: expected a boolean, got string "no"`,
      `${file}:5 endpoints[0].tags[0]: expected a string, got number 1`,
    ]);
  });

  it("reports every problem of a file at once", () => {
    const file = writeConfig(`plugins:
  - name: A
    enabled: 1
  - enabled: true
  - name: ""
general:
  console_log_level: LOUD
  lifecycle_timeout: 0
networking:
  port: 70000
  heartbeat_interval: -1
  node_ips: "10.0.0.1"
`);
    const err = configError(() => loadConfigFile(file));
    expect(err.problems).toEqual([
      `${file}:3 plugins[0].enabled: expected a boolean, got number 1`,
      `${file}:4 plugins[1].name: required key is missing; expected a string`,
      `${file}:5 plugins[2].name: expected a non-empty string, got an empty string`,
      `${file}:7 general.console_log_level: unknown log level "LOUD"; expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL`,
      `${file}:8 general.lifecycle_timeout: expected a number greater than 0, got number 0`,
      `${file}:10 networking.port: expected a number at most 65535, got number 70000`,
      `${file}:11 networking.heartbeat_interval: expected a number greater than 0, got number -1`,
      `${file}:12 networking.node_ips: expected a list, got string "10.0.0.1"`,
    ]);
    expect(err.message).toBe(err.problems.join("\n"));
    expect(err.line).toBe(3);
    expect(err.key).toBe("plugins[0].enabled");
  });

  it("reports a fractional port and a required key left empty", () => {
    const file = writeConfig("plugins:\n  - name:\nnetworking:\n  port: 25.5\n");
    const err = configError(() => loadConfigFile(file));
    expect(err.problems).toEqual([
      `${file}:2 plugins[0].name: required, but empty; expected a string`,
      `${file}:4 networking.port: expected an integer, got number 25.5`,
    ]);
  });

  it("requires key_file with cert_file", () => {
    const file = writeConfig("networking:\n  cert_file: cert.pem\n");
    const err = configError(() => loadConfigFile(file));
    expect(err.key).toBe("networking.key_file");
  });
});

describe("manifest checks", () => {
  it("rejects a duplicate access_name, on the line of the second one", () => {
    const dir = writeManifest(`endpoints:
  - internal_name: a
    access_name: run
  - internal_name: b
    access_name: run
`);
    const err = configError(() => loadManifest(dir));
    expect(err.message).toBe(
      `${join(dir, "plugin_config.yml")}:5 endpoints[1].access_name: duplicate access_name "run"; endpoints[0] already uses it`,
    );
  });

  it("counts an access_name left to default to internal_name", () => {
    const dir = writeManifest(`endpoints:
  - internal_name: run
  - internal_name: other
    access_name: run
  - internal_name: run
`);
    const err = configError(() => loadManifest(dir));
    expect(err.problems.map((p) => p.replace(/^.*?:/, ""))).toEqual([
      `4 endpoints[1].access_name: duplicate access_name "run"; endpoints[0] already uses it`,
      `5 endpoints[2].internal_name: duplicate access_name "run"; endpoints[0] already uses it`,
    ]);
  });

  it("rejects a duplicate argument name", () => {
    const dir = writeManifest(`endpoints:
  - internal_name: a
    arguments:
      - name: x
      - name: y
      - name: x
`);
    const err = configError(() => loadManifest(dir));
    expect(err.line).toBe(6);
    expect(err.key).toBe("endpoints[0].arguments[2].name");
    expect(err.message).toContain('duplicate argument name "x"');
  });

  it("rejects an unknown argument type and suggests the nearest one", () => {
    const dir = writeManifest(`endpoints:
  - internal_name: a
    arguments:
      - name: x
        type: integer
      - name: y
        type: strng
      - name: z
        type: blob
`);
    const file = join(dir, "plugin_config.yml");
    const err = configError(() => loadManifest(dir));
    expect(err.problems).toHaveLength(3);
    expect(err.problems[0]).toMatch(
      new RegExp(
        `^${escapeRegExp(file)}:5 endpoints\\[0\\]\\.arguments\\[0\\]\\.type: unknown type "integer"; expected one of int, .*; did you mean "int"\\?$`,
      ),
    );
    expect(err.problems[1]).toMatch(
      /:7 endpoints\[0\]\.arguments\[1\]\.type: .*did you mean "string"\?$/,
    );
    expect(err.problems[2]).toMatch(/:9 .*unknown type "blob"; expected one of [a-z, ]+$/);
  });

  it("stores argument types in lower case", () => {
    const { manifest } = loadManifest(
      writeManifest(
        "endpoints:\n  - internal_name: a\n    arguments:\n      - name: x\n        type: BOOL\n",
      ),
    );
    expect(manifest.endpoints[0]?.arguments[0]?.type).toBe("bool");
  });

  it("rejects a default that does not fit the declared type", () => {
    const dir = writeManifest(`endpoints:
  - internal_name: a
    arguments:
      - name: n
        type: int
        default: many
`);
    const err = configError(() => loadManifest(dir));
    expect(err.key).toBe("endpoints[0].arguments[0].default");
    expect(err.message).toContain('expected a default of type int, got string "many"');
  });

  it("rejects a manifest whose top level is not a mapping", () => {
    const err = configError(() => loadManifest(writeManifest("just text\n")));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message).toMatch(/:1 expected a mapping .* got string "just text"$/);
  });
});

describe("unknown keys", () => {
  it("warns with file, line, key and the nearest known key", () => {
    const file = writeConfig(`plugins:
  - name: A
    enabeld: false
general:
  consol_log_level: DEBUG
  frobnicate: 1
networking:
  Port: 2511
`);
    const { config, warnings } = loadConfigFile(file);
    expect(warnings.map(formatProblem)).toEqual([
      `${file}:3 plugins[0].enabeld: unknown key; did you mean "enabled"?`,
      `${file}:5 general.consol_log_level: unknown key; did you mean "console_log_level"?`,
      `${file}:6 general.frobnicate: unknown key`,
      `${file}:8 networking.Port: unknown key; did you mean "port"?`,
    ]);
    expect(warnings[1]).toEqual({
      file,
      line: 5,
      key: "general.consol_log_level",
      message: 'unknown key; did you mean "console_log_level"?',
    });
    // Unknown keys are ignored, not applied.
    expect(config.plugins[0]?.enabled).toBe(true);
    expect(config.general.console_log_level).toBe("INFO");
  });

  it("warns about unknown keys in a manifest", () => {
    const dir = writeManifest(`descripton: x
endpoints:
  - internal_name: a
    acces_name: b
    arguments:
      - name: x
        typ: int
`);
    const { manifest, warnings } = loadManifest(dir);
    expect(warnings.map((w) => [w.line, w.key, w.message])).toEqual([
      [1, "descripton", 'unknown key; did you mean "description"?'],
      [4, "endpoints[0].acces_name", 'unknown key; did you mean "access_name"?'],
      [7, "endpoints[0].arguments[0].typ", 'unknown key; did you mean "type"?'],
    ]);
    expect(manifest.endpoints[0]?.access_name).toBe("a");
  });
});

describe("networking", () => {
  it("accepts host, host:port and [ipv6]:port in node_ips", () => {
    const ips = ["10.0.0.5", "10.0.0.5:2511", "node-b.local", "node-b:80", "[::1]:2510", "fe80::1"];
    const { config } = loadConfigFile(
      writeConfig(`networking:\n  node_ips:\n${ips.map((ip) => `    - "${ip}"\n`).join("")}`),
    );
    expect(config.networking.node_ips).toEqual(ips);
  });

  it("rejects a bad node_ips entry, naming its index", () => {
    const file = writeConfig(`networking:
  node_ips:
    - 10.0.0.5
    - http://10.0.0.6:2510
    - "10.0.0.7:99999"
    - "bad host"
    - 12
`);
    const err = configError(() => loadConfigFile(file));
    expect(err.problems).toEqual([
      `${file}:4 networking.node_ips[1]: expected "host", "host:port" or "[ipv6]:port", got string "http://10.0.0.6:2510"; write the address without a scheme`,
      `${file}:5 networking.node_ips[2]: expected "host", "host:port" or "[ipv6]:port", got string "10.0.0.7:99999"; the port must be a number from 1 to 65535`,
      `${file}:6 networking.node_ips[3]: expected "host", "host:port" or "[ipv6]:port", got string "bad host"`,
      `${file}:7 networking.node_ips[4]: expected a string, got number 12`,
    ]);
  });

  it("falls back to AIO_SECRET when the secret is empty", () => {
    vi.stubEnv("AIO_SECRET", "from-env");
    expect(loadConfigFile(writeConfig("")).config.networking.secret).toBe("from-env");
    expect(
      loadConfigFile(writeConfig('networking:\n  secret: ""\n')).config.networking.secret,
    ).toBe("from-env");
    expect(
      loadConfigFile(writeConfig("networking:\n  secret: from-file\n")).config.networking.secret,
    ).toBe("from-file");
    expect(resolveConfigObject({}).config.networking.secret).toBe("from-env");
  });

  it("refuses a secret under 16 characters with networking on, saying how to make a good one", () => {
    vi.stubEnv("AIO_SECRET", undefined);
    const file = writeConfig("networking:\n  enabled: true\n  secret: a\n");
    const error = configError(() => loadConfigFile(file));
    expect(error).toMatchObject({
      code: "CONFIG_INVALID",
      file,
      line: 3,
      key: "networking.secret",
    });
    expect(error.message).toMatch(/is 1 character long; a secret needs at least 16/);
    expect(error.message).toContain("aio secret");
    // From the environment too, named as such.
    vi.stubEnv("AIO_SECRET", "short-secret");
    expect(() => loadConfigFile(writeConfig("networking:\n  enabled: true\n"))).toThrow(
      /the AIO_SECRET environment variable is 12 characters long/,
    );
    // Networking off: the secret is not used, and not judged.
    expect(loadConfigFile(writeConfig("")).config.networking.secret).toBe("short-secret");
  });

  it.each([
    ["aaaaaaaaaaaaaaaaaaaaaaaa", /only 1 different character/],
    ["internationalization", /only letters: a word or a phrase/],
    ["12345678901234567890", /only digits/],
    ["MyPassword-2026-xyz!", /contains "password"/],
  ])("warns of a long but weak secret %s", (secret, why) => {
    vi.stubEnv("AIO_SECRET", undefined);
    const { warnings } = loadConfigFile(
      writeConfig(`networking:\n  enabled: true\n  secret: "${secret}"\n`),
    );
    expect(warnings).toEqual([
      expect.objectContaining({
        key: "networking.secret",
        line: 3,
        message: expect.stringMatching(why),
      }),
    ]);
  });

  it("takes a random secret without a word", () => {
    vi.stubEnv("AIO_SECRET", undefined);
    const { warnings } = loadConfigFile(
      writeConfig(`networking:\n  enabled: true\n  secret: ${"3f9c0a52e1d47b68".repeat(2)}\n`),
    );
    expect(warnings).toEqual([]);
  });

  it("leaves the secret empty without AIO_SECRET", () => {
    vi.stubEnv("AIO_SECRET", undefined);
    expect(loadConfigFile(writeConfig("")).config.networking.secret).toBe("");
  });

  it("forces direct_discoverable when auto_discoverable is true", () => {
    const file = writeConfig(
      "networking:\n  direct_discoverable: false\n  auto_discoverable: true\n",
    );
    const { config, warnings } = loadConfigFile(file);
    expect(config.networking.direct_discoverable).toBe(true);
    expect(warnings).toEqual([
      expect.objectContaining({ line: 2, key: "networking.direct_discoverable" }),
    ]);
    const off = loadConfigFile(
      writeConfig("networking:\n  direct_discoverable: false\n  auto_discoverable: false\n"),
    );
    expect(off.config.networking.direct_discoverable).toBe(false);
    expect(off.warnings).toEqual([]);
  });
});

describe("networking.transport and networking.nats", () => {
  const EXPECTED_SERVER = `expected "nats://host:port", "tls://host:port" or "host:port"`;
  const EXPECTED_TOKEN = `expected one NATS subject token (such as "aio" or "home-1")`;

  it("defaults to the channel, and to one local NATS server under the prefix aio", () => {
    const { config, warnings } = loadConfigFile(writeConfig(""));
    expect(warnings).toEqual([]);
    expect(config.networking.transport).toBe("channel");
    expect(config.networking.nats).toEqual({
      servers: ["nats://127.0.0.1:4222"],
      user: "",
      pass: "",
      token: "",
      creds_file: "",
      ca_file: "",
      subject_prefix: "aio",
    });
    expect(resolveConfigObject({}).config.networking.nats).toEqual(config.networking.nats);
    for (const written of ["nats", "NATS", "Channel"]) {
      const chosen = loadConfigFile(writeConfig(`networking:\n  transport: ${written}\n`)).config;
      expect(chosen.networking.transport).toBe(written.toLowerCase());
    }
  });

  it("accepts nats://, tls:// and bare host:port servers", () => {
    const servers = [
      "nats://127.0.0.1:4222",
      "tls://nats.example.com",
      "nats://[::1]:4222",
      "NATS://n1.local:4223/",
      "10.0.0.5:4222",
      "nats-b",
      "[fd00::5]:4222",
    ];
    const { config } = loadConfigFile(
      writeConfig(
        `networking:\n  nats:\n    servers:\n${servers.map((s) => `      - "${s}"\n`).join("")}`,
      ),
    );
    expect(config.networking.nats.servers).toEqual(servers);
  });

  it("rejects a bad server, naming its index and what is wrong", () => {
    const file = writeConfig(`networking:
  nats:
    servers:
      - nats://127.0.0.1:4222
      - http://10.0.0.6:4222
      - nats://aio:secret@10.0.0.7:4222
      - nats://10.0.0.8:99999
      - tls://10.0.0.9:4222/path
      - "bad host"
      - ""
      - 4222
`);
    const err = configError(() => loadConfigFile(file));
    expect(err.problems).toEqual([
      `${file}:5 networking.nats.servers[1]: ${EXPECTED_SERVER}, got string "http://10.0.0.6:4222"; the scheme must be nats:// or tls://`,
      `${file}:6 networking.nats.servers[2]: ${EXPECTED_SERVER}, got string "nats://aio:secret@10.0.0.7:4222"; give credentials in user and pass, or token, not in the URL`,
      `${file}:7 networking.nats.servers[3]: ${EXPECTED_SERVER}, got string "nats://10.0.0.8:99999"; the port must be a number from 1 to 65535`,
      `${file}:8 networking.nats.servers[4]: ${EXPECTED_SERVER}, got string "tls://10.0.0.9:4222/path"; a server URL has no path, query or fragment`,
      `${file}:9 networking.nats.servers[5]: ${EXPECTED_SERVER}, got string "bad host"`,
      `${file}:10 networking.nats.servers[6]: ${EXPECTED_SERVER}, got an empty string`,
      `${file}:11 networking.nats.servers[7]: expected a string, got number 4222`,
    ]);
  });

  it("rejects an empty server list and an unknown transport, suggesting the nearest", () => {
    const file = writeConfig("networking:\n  transport: nat\n  nats:\n    servers: []\n");
    const err = configError(() => loadConfigFile(file));
    expect(err.problems).toEqual([
      `${file}:2 networking.transport: unknown transport "nat"; expected one of channel, nats; did you mean "nats"?`,
      `${file}:4 networking.nats.servers: expected a list of at least 1 item(s), got an empty list`,
    ]);
  });

  it.each([
    ["a.b", '"." separates tokens, so it cannot be in one'],
    ["my mesh", "it contains whitespace or a control character"],
    ["aio*", '"*" and ">" are wildcards'],
    [">", '"*" and ">" are wildcards'],
    ["$SYS", 'subjects starting with "$" are reserved by NATS'],
  ])("rejects the subject_prefix %j, saying why", (prefix, why) => {
    const file = writeConfig(`networking:\n  nats:\n    subject_prefix: "${prefix}"\n`);
    const err = configError(() => loadConfigFile(file));
    expect(err.problems).toEqual([
      `${file}:3 networking.nats.subject_prefix: ${EXPECTED_TOKEN}, got string ${JSON.stringify(prefix)}; ${why}`,
    ]);
  });

  it("rejects an empty subject_prefix", () => {
    const err = configError(() =>
      resolveConfigObject({ networking: { nats: { subject_prefix: "" } } }),
    );
    expect(err.problems).toEqual([
      "networking.nats.subject_prefix: expected a non-empty string, got an empty string",
    ]);
  });

  it("needs user and pass together, and one way to log in", () => {
    const file = writeConfig("networking:\n  nats:\n    user: aio\n");
    expect(configError(() => loadConfigFile(file)).problems).toEqual([
      `${file}:2 networking.nats.pass: required when user is set (NATS user authentication needs user and pass)`,
    ]);
    expect(
      configError(() => resolveConfigObject({ networking: { nats: { pass: "x" } } })).problems,
    ).toEqual([
      "networking.nats.user: required when pass is set (NATS user authentication needs user and pass)",
    ]);
    const both = writeConfig("networking:\n  nats:\n    user: aio\n    pass: x\n    token: t\n");
    expect(configError(() => loadConfigFile(both)).problems).toEqual([
      `${both}:5 networking.nats.token: give one way to log in to NATS, not 2: user and pass, token`,
    ]);
    const ok = resolveConfigObject({ networking: { nats: { user: "aio", pass: "x" } } });
    expect(ok.config.networking.nats).toMatchObject({ user: "aio", pass: "x", token: "" });
    expect(
      resolveConfigObject({ networking: { nats: { token: "t" } } }).config.networking.nats.token,
    ).toBe("t");
  });

  it("resolves creds_file and ca_file against the config's folder", () => {
    const file = writeConfig(
      "networking:\n  nats:\n    creds_file: nats/node.creds\n    ca_file: /dev/null\n",
    );
    const dir = join(file, "..");
    mkdirSync(join(dir, "nats"));
    writeFileSync(join(dir, "nats", "node.creds"), "creds\n");
    const { config } = loadConfigFile(file);
    expect(config.networking.nats.creds_file).toBe(join(dir, "nats", "node.creds"));
    expect(config.networking.nats.ca_file).toBe("/dev/null");
    expect(
      resolveConfigObject({ networking: { nats: { creds_file: "nats/node.creds" } } }, dir).config
        .networking.nats.creds_file,
    ).toBe(join(dir, "nats", "node.creds"));
  });

  it("refuses a creds_file or ca_file that is not there, or is a folder, with file and line", () => {
    const file = writeConfig(
      "networking:\n  nats:\n    creds_file: missing.creds\n    ca_file: .\n",
    );
    const dir = join(file, "..");
    const err = configError(() => loadConfigFile(file));
    expect(err.problems).toEqual([
      `${file}:3 networking.nats.creds_file: file not found: ${join(dir, "missing.creds")}`,
      `${file}:4 networking.nats.ca_file: ${dir} is a folder, not a file`,
    ]);
    expect(err).toMatchObject({
      code: "CONFIG_INVALID",
      line: 3,
      key: "networking.nats.creds_file",
    });
    expect(
      configError(() => resolveConfigObject({ networking: { nats: { ca_file: "no.pem" } } }, dir))
        .problems,
    ).toEqual([`networking.nats.ca_file: file not found: ${join(dir, "no.pem")}`]);
  });

  it("warns of an unknown key in nats, suggesting the nearest", () => {
    const file = writeConfig("networking:\n  nats:\n    server: [nats-a]\n");
    const { config, warnings } = loadConfigFile(file);
    expect(warnings).toEqual([
      {
        file,
        line: 3,
        key: "networking.nats.server",
        message: 'unknown key; did you mean "servers"?',
      },
    ]);
    expect(config.networking.nats.servers).toEqual(["nats://127.0.0.1:4222"]);
  });
});

describe("a config given as an object", () => {
  const yamlText = `plugins:
  - name: A
    path: ./somewhere/A
    arguments: {x: 1}
  - name: B
    enabled: false
general:
  hostname: here
  console_log_level: debug
  log_dir: ""
networking:
  enabled: true
  node_ips: ["10.0.0.9:2600"]
  port: 2600
`;
  const object: ConfigObject = {
    plugins: [
      { name: "A", path: "./somewhere/A", arguments: { x: 1 } },
      { name: "B", enabled: false },
    ],
    general: { hostname: "here", console_log_level: "debug", log_dir: "" },
    networking: { enabled: true, node_ips: ["10.0.0.9:2600"], port: 2600 },
  };

  it("gives the same config as the same data in a file", () => {
    const file = writeConfig(yamlText);
    const dir = join(file, "..");
    const fromFile = loadConfigFile(file).config;
    const fromObject = resolveConfigObject(object, dir).config;
    expect(fromObject.file).toBeUndefined();
    expect(fromObject).toEqual({ ...fromFile, file: undefined });
  });

  it("resolves paths against baseDir, then data.baseDir, then the working directory", () => {
    const a = join(root, "a");
    const b = join(root, "b");
    expect(resolveConfigObject({ ...object, baseDir: b }, a).config.plugins[0]?.path).toBe(
      join(a, "somewhere", "A"),
    );
    const viaData = resolveConfigObject({ ...object, baseDir: b }).config;
    expect(viaData.baseDir).toBe(b);
    expect(viaData.plugins[1]?.path).toBe(join(b, "plugins", "B"));
    expect(resolveConfigObject(object).config.baseDir).toBe(process.cwd());
  });

  it("fills in the same defaults", () => {
    const fromObject = resolveConfigObject({}, root).config;
    const fromFile = loadConfigFile(writeConfig("")).config;
    expect(fromObject.networking).toEqual(fromFile.networking);
    expect(fromObject.general).toEqual({
      ...fromFile.general,
      plugin_package: join(root, "plugins"),
      log_dir: join(root, "logs"),
    });
  });

  it("reports the same problems by key path, without file or line", () => {
    const bad = {
      plugins: [{ name: "A" }, { name: "B", enabled: "yes" }],
      networking: { node_ips: ["http://x"], port: -1 },
    } as unknown as ConfigObject;
    const err = configError(() => resolveConfigObject(bad));
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.problems).toEqual([
      'plugins[1].enabled: expected a boolean, got string "yes"',
      'networking.node_ips[0]: expected "host", "host:port" or "[ipv6]:port", got string "http://x"; write the address without a scheme',
      "networking.port: expected a number at least 0, got number -1",
    ]);
    expect(err.file).toBeUndefined();
    expect(err.line).toBeUndefined();
    expect(err.key).toBe("plugins[1].enabled");
  });

  it("warns about unknown keys the same way", () => {
    const { warnings } = resolveConfigObject({
      general: { consol_log_level: "INFO" },
    } as unknown as ConfigObject);
    expect(warnings).toEqual([
      {
        file: undefined,
        line: undefined,
        key: "general.consol_log_level",
        message: 'unknown key; did you mean "console_log_level"?',
      },
    ]);
    expect(formatProblem(warnings[0] as (typeof warnings)[0])).toBe(
      'general.consol_log_level: unknown key; did you mean "console_log_level"?',
    );
  });

  it("rejects data that is not an object", () => {
    const err = configError(() => resolveConfigObject([] as unknown as ConfigObject));
    expect(err.message).toBe("expected a mapping of keys to values at the top level, got a list");
  });
});

describe("formatProblem", () => {
  it("shows a file inside the working directory relative to it, else absolute", () => {
    expect(
      formatProblem({ file: join(process.cwd(), "config.yml"), line: 7, key: "a.b", message: "m" }),
    ).toBe("config.yml:7 a.b: m");
    expect(formatProblem({ file: "/elsewhere/config.yml", line: 7, key: "a", message: "m" })).toBe(
      "/elsewhere/config.yml:7 a: m",
    );
    expect(formatProblem({ file: "/x/config.yml", key: "a", message: "m" })).toBe(
      "/x/config.yml a: m",
    );
    expect(formatProblem({ key: "a[0]", message: "m" })).toBe("a[0]: m");
    expect(formatProblem({ file: "/x/c.yml", line: 1, key: "", message: "m" })).toBe(
      "/x/c.yml:1 m",
    );
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
