/**
 * The seed's basic usage: start a core from config.yml, call a plugin, then run until Ctrl-C.
 * Run it with `npx tsx examples/main_application.ts` after `npm run build`.
 */
import { fileURLToPath } from "node:url";
import { PluginCore } from "aio-assistant-core";

const core = new PluginCore(fileURLToPath(new URL("./config.yml", import.meta.url)));
await core.waitUntilReady();

const result = await core.execute("PluginB", "calculate_square", 6, { host: "local" });
console.log(`Result: ${result}`);

for await (const item of core.executeStream("PluginA", "perform_operation_stream_ABC", 9)) {
  console.log(`Received: ${item}`);
}

console.log("Running; press Ctrl-C to stop.");
// Nothing else holds the process open while plugins idle, so wait for the signal explicitly.
await new Promise<void>((resolve) => {
  const keepAlive = setInterval(() => undefined, 2 ** 30);
  const stop = () => {
    clearInterval(keepAlive);
    resolve();
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
});
console.log("Shutting down...");
await core.close();
console.log("Successfully shut down the service.");
