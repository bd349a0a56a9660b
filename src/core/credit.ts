/**
 * How far the producer of a stream may run ahead of its consumer. The consumer grants credit
 * as it reads (see `StreamInbox`); these bound what either side holds in memory.
 */

/** Items a stream to another node may send before the consumer grants more. */
export const STREAM_WINDOW = 1024;

/** Most credit a consumer on another node may hold: a peer cannot make this node buffer more. */
export const MAX_CREDIT = 4 * 1024;

/** Bytes of a stream's items sent to another node but not yet read, at most (one item may exceed it). */
export const STREAM_WINDOW_BYTES = 8 * 1024 * 1024;

/** Items a stream to another thread may send before the consumer grants more. */
export const THREAD_STREAM_WINDOW = 256;
