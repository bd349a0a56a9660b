/**
 * Topic names and subscription patterns: `/`-separated segments; in a pattern `*` stands for
 * exactly one segment and `>`, as the last segment only, for one or more. The same rules as
 * NATS subjects with another separator, so a pattern maps onto a subject one to one.
 */

/** Why a topic or pattern is malformed, or undefined when it is well formed. */
function problem(text: unknown, what: "topic" | "pattern"): string | undefined {
  if (typeof text !== "string" || text === "") return `a ${what} must be a non-empty string`;
  if (text.length > 1024) return `a ${what} is at most 1024 characters`;
  const segments = text.split("/");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    if (segment === "")
      return `${what} "${text}" has an empty segment (a leading, trailing or doubled "/")`;
    if (/\s/.test(segment)) return `${what} "${text}" contains white space`;
    if (what === "topic" && (segment.includes("*") || segment.includes(">"))) {
      return `topic "${text}" contains a wildcard; "*" and ">" belong in subscription patterns`;
    }
    if (what === "pattern") {
      if (
        (segment.includes("*") && segment !== "*") ||
        (segment.includes(">") && segment !== ">")
      ) {
        return `pattern "${text}": a wildcard must be a whole segment ("a/*/c", not "a/b*")`;
      }
      if (segment === ">" && i !== segments.length - 1) {
        return `pattern "${text}": ">" may only be the last segment`;
      }
    }
  }
  return undefined;
}

/** Topics found well formed lately: publishers use the same few again and again. */
const wellFormed = new Set<string>();
const MAX_REMEMBERED = 1024;

export function topicProblem(topic: unknown): string | undefined {
  if (typeof topic === "string" && wellFormed.has(topic)) return undefined;
  const wrong = problem(topic, "topic");
  if (wrong === undefined) {
    if (wellFormed.size >= MAX_REMEMBERED) wellFormed.clear();
    wellFormed.add(topic as string);
  }
  return wrong;
}

export function patternProblem(pattern: unknown): string | undefined {
  return problem(pattern, "pattern");
}

/** Whether `topic` matches `pattern`; both are taken as well formed. */
export type TopicMatcher = (topic: string) => boolean;

/** Compiles a well-formed pattern into a matcher. */
export function topicMatcher(pattern: string): TopicMatcher {
  if (!pattern.includes("*") && !pattern.includes(">")) return (topic) => topic === pattern;
  const segments = pattern.split("/");
  const rest = segments.at(-1) === ">";
  const fixed = rest ? segments.slice(0, -1) : segments;
  return (topic) => {
    const parts = topic.split("/");
    if (rest ? parts.length <= fixed.length : parts.length !== fixed.length) return false;
    for (let i = 0; i < fixed.length; i++) {
      const want = fixed[i];
      if (want !== "*" && want !== parts[i]) return false;
    }
    return true;
  };
}
