/**
 * Trying nodes in turn: a call goes to the first node, and to the next one only while the
 * call never reached the one before (`missed` says so, and why); a call that may have run is
 * never repeated. A stream counts as taken once its first step came back. The four forms
 * (promise, stream, and their blocking twins) are the one rule, for calls and topic requests.
 */
import type { RemoteNode } from "./nodes.js";

/**
 * Why `node` did not take the call, when another node may take it instead; undefined when the
 * error is the call's own outcome, to be thrown as it is.
 */
export type Missed = (node: RemoteNode, error: unknown) => string | undefined;

/** The error when no node took the call, from the reasons each gave. */
export type NoneTook = (reasons: string[]) => Error;

export async function inTurn<T>(
  nodes: readonly RemoteNode[],
  attempt: (node: RemoteNode) => Promise<T>,
  missed: Missed,
  none: NoneTook,
): Promise<T> {
  const reasons: string[] = [];
  for (const node of nodes) {
    try {
      return await attempt(node);
    } catch (error) {
      const reason = missed(node, error);
      if (reason === undefined) throw error;
      reasons.push(reason);
    }
  }
  throw none(reasons);
}

export async function* streamInTurn(
  nodes: readonly RemoteNode[],
  open: (node: RemoteNode) => AsyncGenerator<unknown, void, undefined>,
  missed: Missed,
  none: NoneTook,
): AsyncGenerator<unknown, void, undefined> {
  const reasons: string[] = [];
  for (const node of nodes) {
    const stream = open(node);
    let first: IteratorResult<unknown, void>;
    try {
      first = await stream.next();
    } catch (error) {
      const reason = missed(node, error);
      if (reason === undefined) throw error;
      reasons.push(reason);
      continue;
    }
    if (first.done) return;
    try {
      yield first.value;
      yield* stream;
    } finally {
      // A consumer that stops at the first item must still cancel the remote generator.
      await stream.return();
    }
    return;
  }
  throw none(reasons);
}

export function inTurnSync<T>(
  nodes: readonly RemoteNode[],
  attempt: (node: RemoteNode) => T,
  missed: Missed,
  none: NoneTook,
): T {
  const reasons: string[] = [];
  for (const node of nodes) {
    try {
      return attempt(node);
    } catch (error) {
      const reason = missed(node, error);
      if (reason === undefined) throw error;
      reasons.push(reason);
    }
  }
  throw none(reasons);
}

export function* streamInTurnSync(
  nodes: readonly RemoteNode[],
  open: (node: RemoteNode) => Generator<unknown, void, undefined>,
  missed: Missed,
  none: NoneTook,
): Generator<unknown, void, undefined> {
  const reasons: string[] = [];
  for (const node of nodes) {
    const stream = open(node);
    let first: IteratorResult<unknown, void>;
    try {
      first = stream.next();
    } catch (error) {
      const reason = missed(node, error);
      if (reason === undefined) throw error;
      reasons.push(reason);
      continue;
    }
    if (first.done) return;
    try {
      yield first.value;
      yield* stream;
    } finally {
      stream.return();
    }
    return;
  }
  throw none(reasons);
}
