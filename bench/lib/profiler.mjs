/**
 * CPU profiling of the measured window only, from inside a benchmark process (the inspector,
 * 200 µs sampling): `profile("start")`, then `profile("stop", file)` writes a .cpuprofile.
 */
import { writeFileSync } from "node:fs";

let session;

export async function profile(action, file) {
  const { Session } = await import("node:inspector/promises");
  if (action === "start") {
    session = new Session();
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 200 });
    await session.post("Profiler.start");
    return;
  }
  const { profile: result } = await session.post("Profiler.stop");
  writeFileSync(file, JSON.stringify(result));
  session.disconnect();
}
