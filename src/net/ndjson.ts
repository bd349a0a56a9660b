/** Reading NDJSON answers (`/execute_stream`): the body's lines, one at a time. */

/**
 * The lines of a streamed body, without their newlines; blank lines are skipped. The decoder
 * streams, so a character split across two reads is not cut in half.
 */
export async function* ndjsonLines(body: AsyncIterable<Buffer>): AsyncGenerator<string, void> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of body) {
    rest += decoder.decode(chunk, { stream: true });
    let newline = rest.indexOf("\n");
    while (newline >= 0) {
      const line = rest.slice(0, newline);
      if (line !== "") yield line;
      rest = rest.slice(newline + 1);
      newline = rest.indexOf("\n");
    }
  }
  rest += decoder.decode();
  if (rest !== "") yield rest;
}
