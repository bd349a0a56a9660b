/**
 * Child process of the `discovery` section (bench/sections/discovery.mjs): one node, spawned
 * fresh for every run. argv[2] is a JSON spec:
 *
 *   { impl: "aio" | "mol", role: "server" | "caller", port, peers: [...], distUrl, pluginPath,
 *     timeoutMs }
 *
 *   aio server  PluginCore with networking on `port` (bind: the default, 127.0.0.1 without a
 *               secret), default heartbeat_interval and liveness_timeout, node_ips = peers
 *               ("127.0.0.1:PORT"), serving PluginB (calculate_square)
 *   aio caller  the same without plugins; once start() resolves it calls
 *               execute("PluginB", "calculate_square", 6) until one returns 36
 *   mol server  Moleculer 0.14 broker, TCP transporter on `port`, udpDiscovery off, static
 *               urls = peers ("127.0.0.1:PORT/nodeID"), service `math` with action `square`
 *   mol caller  the same without services, calling broker.call("math.square", { n: 6 })
 *
 * A caller that fails waits 5 ms and tries again. Lines on stdout (times are Date.now(), which
 * the parent compares with its own: both run on the same machine):
 *
 *   READY {"t"}                                    the node is started
 *   ERROR {"error"}                                a failed call, when its error differs from the last
 *   CALLED {"t","attempts","firstError"}           the first call that returned 36
 *   TIMEOUT {"attempts","lastError"}               no success within timeoutMs of READY
 *
 * The node stays up until the parent kills it; it exits by itself when its stdin closes (the
 * parent gone), so a crashed benchmark leaves no process behind.
 */
const spec = JSON.parse(process.argv[2] ?? "null");
if (!spec)
  throw new Error("usage: node discovery-node.mjs '<json spec>' (run by the discovery section)");

process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();

const say = (tag, value) => process.stdout.write(`${tag} ${JSON.stringify(value)}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const describe = (error) => String(error?.code ?? error?.type ?? error?.name ?? error);

async function startAio() {
  const { PluginCore } = await import(spec.distUrl);
  const server = spec.role === "server";
  const core = new PluginCore({
    plugins: server ? [{ name: "PluginB", path: spec.pluginPath }] : [],
    general: {
      hostname: server ? "discovery-b" : "discovery-a",
      console_log_level: "CRITICAL",
      log_dir: "",
    },
    networking: { enabled: true, port: spec.port, node_ips: spec.peers },
  });
  await core.start();
  if (server && core.listPlugins().some((p) => p.state !== "enabled"))
    throw new Error(`PluginB not enabled: ${JSON.stringify(core.listPlugins())}`);
  return () => core.execute("PluginB", "calculate_square", 6);
}

async function startMoleculer() {
  const { default: moleculer } = await import("moleculer");
  const server = spec.role === "server";
  const broker = new moleculer.ServiceBroker({
    nodeID: server ? "discovery-mol-b" : "discovery-mol-a",
    logger: false,
    transporter: {
      type: "TCP",
      options: { udpDiscovery: false, port: spec.port, urls: spec.peers },
    },
  });
  if (server) {
    broker.createService({
      name: "math",
      actions: {
        square(ctx) {
          return ctx.params.n ** 2;
        },
      },
    });
  }
  await broker.start();
  return () => broker.call("math.square", { n: 6 });
}

async function poll(call) {
  const end = Date.now() + spec.timeoutMs;
  let attempts = 0;
  let firstError;
  let lastError;
  let shown;
  for (;;) {
    attempts++;
    try {
      const result = await call();
      if (result === 36) return say("CALLED", { t: Date.now(), attempts, firstError });
      lastError = `returned ${JSON.stringify(result)}`;
    } catch (error) {
      lastError = describe(error);
    }
    firstError ??= lastError;
    if (lastError !== shown) {
      shown = lastError;
      say("ERROR", { error: lastError });
    }
    if (Date.now() >= end) return say("TIMEOUT", { attempts, lastError });
    await sleep(5);
  }
}

try {
  const call = spec.impl === "aio" ? await startAio() : await startMoleculer();
  say("READY", { t: Date.now() });
  if (spec.role === "caller") await poll(call);
} catch (error) {
  say("FAILED", String(error?.stack ?? error));
  process.exit(1);
}
