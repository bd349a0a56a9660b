/**
 * Measurement helpers shared by the benchmark sections.
 *
 * Why not tinybench: it times every iteration with performance.now(), which costs about as much
 * as the ~100 ns calls measured here, and it has no "N calls in flight" mode. Instead each case
 * runs closed loops of awaited calls in chunks; the clock is read once per chunk.
 */
import { performance } from "node:perf_hooks";

const now = () => performance.now();

/** Compiles a fresh loop per contender so V8's feedback at the call site stays monomorphic. */
function compileChunk(fn, chunk) {
  // A fresh function literal per contender: closures of one literal would share feedback.
  return new Function(
    "fn",
    "chunk",
    `return async function chunkLoop() { for (let i = 0; i < chunk; i++) await fn(); };`,
  )(fn, chunk);
}

/**
 * A runnable case: `fn` makes one call (returning a value or a promise), `concurrency` closed
 * loops each keep one call in flight, so exactly `concurrency` calls are outstanding at a time.
 */
export function makeCase(fn, concurrency, { chunk = concurrency > 1 ? 32 : 512 } = {}) {
  const loop = compileChunk(fn, chunk);
  /** Runs for about `ms` milliseconds; returns { ops, ms, perSec }. */
  return async function measure(ms) {
    let ops = 0;
    const start = now();
    const end = start + ms;
    const worker = async () => {
      do {
        await loop();
        ops += chunk;
      } while (now() < end);
    };
    if (concurrency === 1) await worker();
    else {
      const workers = [];
      for (let i = 0; i < concurrency; i++) workers.push(worker());
      await Promise.all(workers);
    }
    const elapsed = now() - start;
    return { ops, ms: elapsed, perSec: (ops / elapsed) * 1000 };
  };
}

export function collectGarbage() {
  if (typeof globalThis.gc === "function") globalThis.gc();
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Measures every contender `rounds` times, interleaved: each round runs all contenders once,
 * in an order rotated per round, so drift on a noisy machine hits them all alike.
 * `contenders`: [{ id, measure }]. Returns { [id]: number[] } of calls/s per round.
 */
export async function interleaved(contenders, { rounds, ms, warmupMs, onRound }) {
  for (const c of contenders) {
    collectGarbage();
    await c.measure(warmupMs);
  }
  const samples = Object.fromEntries(contenders.map((c) => [c.id, []]));
  for (let r = 0; r < rounds; r++) {
    const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]);
    for (const c of order) {
      collectGarbage();
      const { perSec } = await c.measure(ms);
      samples[c.id].push(perSec);
    }
    onRound?.(r + 1, rounds);
  }
  return samples;
}

// ------------------------------------------------------------------ formatting

export function formatRate(perSec) {
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)} M/s`;
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)} k/s`;
  return `${perSec.toFixed(0)} /s`;
}

export function formatMs(ms) {
  return ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`;
}

/** Half the spread of the samples relative to their median, as "±x%". */
export function spread(values) {
  const m = median(values);
  if (!m) return "";
  const half = (Math.max(...values) - Math.min(...values)) / 2;
  return `±${((half / m) * 100).toFixed(0)}%`;
}

/** A plain-text table; `align` per column: "l" or "r". */
export function table(header, rows, align = header.map((_, i) => (i === 0 ? "l" : "r"))) {
  const all = [header, ...rows].map((row) => row.map((cell) => String(cell)));
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  const line = (row) =>
    row
      .map((cell, i) => (align[i] === "l" ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(all[0]), rule, ...all.slice(1).map(line)].join("\n");
}
