import { logErrors, Plugin } from "aio-assistant-core";

/** Written in synchronous style: no async, no await. */
export class PluginC extends Plugin {
  override onLoad(args: { variable?: string } | undefined): void {
    this.logger.debug(`onLoad with variable=${args?.variable}`);
  }

  @logErrors
  perform_operation(argument: number): number {
    return this.executeSync<number>("PluginB", "calculate_square", argument);
  }
}
