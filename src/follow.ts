/**
 * Something pushed at its own pace (publishes to a topic, log lines) as an async generator the
 * consumer pulls at its pace, with a bounded queue between them: a consumer that falls `limit`
 * items behind loses the oldest, and `dropped` is told how many before the next item it gets.
 */

/**
 * `start` begins pushing at once, not at the first `next()`, so nothing pushed after this
 * returns is missed; it returns the function that stops it, which runs when the consumer stops.
 */
export function followed<T>(
  start: (push: (item: T) => void) => () => void,
  dropped: (count: number) => void,
  limit: number,
): AsyncGenerator<T, void, undefined> {
  const queue: T[] = [];
  let wake: (() => void) | undefined;
  let lost = 0;
  let stopped = false;
  const stopPushing = start((item) => {
    if (queue.length >= limit) {
      queue.shift();
      lost++;
    }
    queue.push(item);
    wake?.();
  });
  const items = (async function* () {
    try {
      for (;;) {
        if (lost > 0) {
          dropped(lost);
          lost = 0;
        }
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        if (stopped) return;
      }
    } finally {
      stopPushing();
    }
  })();
  // A generator stopped before its first step never runs its `finally`, and one waiting for an
  // item would only see `return()` after the next item: both are ended here.
  const stop = items.return.bind(items);
  items.return = (value) => {
    stopped = true;
    stopPushing();
    wake?.();
    return stop(value);
  };
  return items;
}
