/** Size and shape limits of what crosses the network. */

/** Deepest nesting of JSON accepted from the network. */
export const MAX_JSON_DEPTH = 64;

/** Default largest request body, and largest call packet on the channel (1 MiB). */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** Largest answer packet (a result or a batch of stream items) sent over the channel. */
export const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
