/**
 * The seam between what a remote call means and how its packets reach the other node.
 *
 * Above it, transport-independent: `NodeConnection` (the calling side: pairs answers with calls,
 * streams with credit, cancels, tells "never delivered" from "may have run") and
 * `ChannelSession` (the serving side: runs the calls a peer sends). Both speak the packets of
 * docs/protocol.md ("The channel") and nothing else.
 *
 * Below it, one folder per transport under `transports/`: how a pipe to a node is opened
 * (dialled, authenticated, framed, signed), and how the pipe tells it is alive. Adding a
 * transport is adding a folder that implements `PacketPipe` and a `Dial`.
 */

/** An open, ordered, authenticated pipe of packets to one node. */
export interface PacketPipe {
  readonly open: boolean;
  /** Bytes queued or handed to the wire but not yet written: the pipe's backpressure. */
  readonly buffered: number;
  /**
   * How many packets have been handed to the wire. A packet whose position (what `send`
   * returned) is later than this never left this process: its call may go to another node.
   */
  readonly written: number;
  /** Resolves once no more than `bytes` are buffered, or the pipe closed. */
  whenDrained(bytes: number): Promise<void>;
  /**
   * Queues a packet. Returns its position in the pipe's order (compare with `written`), 0 if
   * the pipe is closed, -1 if the packet is over the size limit.
   */
  send(packet: object): number;
  /** `send` for a packet already written as JSON text. */
  sendJson(text: string): number;
  /** Writes what is queued now. */
  flush(): void;
  /** Asks the other side for a sign of life; its answer reaches `PipeEvents.heard`. */
  ping(): void;
  /** Closes after writing what is queued. */
  close(code?: number, reason?: string): void;
  /** Drops the pipe at once, without a word to the other side (which may be unreachable). */
  terminate(): void;
}

/** What a pipe reports to the side that opened it. */
export interface PipeEvents {
  packet(packet: unknown): void;
  /** Anything arrived (packets, an answer to `ping`): the other side is alive. */
  heard(): void;
  /** The pipe closed, after it had opened, by the other side or the network. */
  closed(): void;
  /** A message that is not valid JSON, is hostile, or fails its MAC; the pipe is dropped. */
  badMessage(error: Error): void;
}

/**
 * Opens a pipe to one node. Rejects with `NotDelivered` when nothing could be sent (nothing
 * listens, the node refused this node's credentials), or with a `NetworkRequestError`
 * `UNAUTHORIZED` when the node failed to prove that it knows the secret.
 */
export type Dial = (events: PipeEvents) => Promise<PacketPipe>;
