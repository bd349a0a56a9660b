import { Plugin } from "aio-assistant-core";

/** A plain synchronous endpoint: callable with execute, and with executeSync from any thread. */
export class PluginB extends Plugin {
  calculate_square(number: number): number {
    return number ** 2;
  }
}
