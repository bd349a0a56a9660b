import { setTimeout as sleep } from "node:timers/promises";
import { logErrors, Plugin } from "aio-assistant-core";

/** An asynchronous plugin that calls another plugin and streams. */
export class PluginA extends Plugin {
  @logErrors
  async perform_operation(argument: number): Promise<number> {
    return this.execute<number>("PluginB", "calculate_square", argument);
  }

  @logErrors
  async *perform_operation_stream(argument: number): AsyncGenerator<number | string> {
    const square = await this.execute<number>("PluginB", "calculate_square", argument);
    for (let i = 0; i < 5; i++) {
      await sleep(500);
      yield square;
    }
    yield "ended stream test";
  }
}
