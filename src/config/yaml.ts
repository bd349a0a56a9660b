/**
 * Reading a YAML file into plain data while keeping the way back from a key path to its line.
 */

import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import type { KeyPath } from "./schema.js";

export interface YamlProblem {
  line: number | undefined;
  message: string;
}

export interface ParsedYaml {
  /** The file's data; `undefined` when there were syntax errors. */
  data: unknown;
  /** Syntax errors; when there are any, `data` is not to be trusted. */
  errors: YamlProblem[];
  /** What the YAML parser warned about (such as an unresolved tag). */
  warnings: YamlProblem[];
  /** The line of the node at `path` (or of the deepest part of it that exists). */
  lineOf(path: KeyPath): number | undefined;
}

export interface ParseOptions {
  /**
   * Paths (from the top) of values that are kept as their source text when they read as a
   * number, so `version: 1.0` stays "1.0" instead of becoming 1.
   */
  numbersAsText?: readonly KeyPath[];
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "").trim();
}

export function parseYaml(text: string, options: ParseOptions = {}): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineAt = (offset: number | undefined): number | undefined =>
    offset === undefined ? undefined : lineCounter.linePos(offset).line;

  const lineOf = (path: KeyPath): number | undefined => {
    let node: unknown = doc.contents;
    let line = lineAt((doc.contents as Node | null)?.range?.[0]);
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(segment),
        );
        if (pair === undefined) return line;
        line = lineAt((pair.key as Node).range?.[0]) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof segment === "number") {
        const item = node.items[segment];
        if (item === undefined) return line;
        line = lineAt((item as Node).range?.[0]) ?? line;
        node = item;
      } else {
        return line;
      }
    }
    return line;
  };

  const warnings = doc.warnings.map((w) => ({
    line: lineAt(w.pos[0]),
    message: firstLine(w.message),
  }));
  if (doc.errors.length > 0) {
    const errors = doc.errors.map((e) => ({
      line: lineAt(e.pos[0]),
      message: `YAML syntax error: ${firstLine(e.message)}`,
    }));
    return { data: undefined, errors, warnings, lineOf };
  }

  for (const path of options.numbersAsText ?? []) {
    const node = doc.getIn(path, true);
    if (isScalar(node) && typeof node.value === "number" && typeof node.source === "string") {
      node.value = node.source;
    }
  }
  try {
    return { data: doc.toJS({ maxAliasCount: 100 }), errors: [], warnings, lineOf };
  } catch (err) {
    // Such as too many aliases (a "billion laughs" document).
    const message = `YAML error: ${firstLine((err as Error).message)}`;
    return { data: undefined, errors: [{ line: undefined, message }], warnings, lineOf };
  }
}
