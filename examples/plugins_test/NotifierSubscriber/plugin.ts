import { Plugin, type TopicInfo } from "aio-assistant-core";

/**
 * The original's NotifierSubscriber: receives readings published to `sensor/ROOM/temperature`
 * through its manifest (`topic:`), alerts through a code subscription, and answers topic
 * requests. What it received can be read back with `received`.
 */
export class NotifierSubscriber extends Plugin {
  #readings: Array<{ room: string; celsius: number }> = [];
  #alerts: Array<{ topic: string; publisher: string; args: unknown }> = [];

  override onEnable(): void {
    this.subscribe("alerts/>", (args: unknown, info: TopicInfo) => {
      this.#alerts.push({ topic: info.topic, publisher: info.publisher, args });
    });
  }

  // Subscribed from plugin_config.yml: `topic: sensor/*/temperature` (any room).
  on_temperature(room: string, celsius: number): void {
    this.#readings.push({ room, celsius });
  }

  /** Answers `requestTopic("convert/c_to_f", …)`. */
  to_fahrenheit(celsius: number): number {
    return Math.round((celsius * 9) / 5 + 32);
  }

  /** Answers `requestTopicStream("count/up", …)`. */
  *count_up(n: number): Generator<number> {
    for (let i = 1; i <= n; i++) yield i;
  }

  received(): { readings: Array<{ room: string; celsius: number }>; alerts: unknown[] } {
    return { readings: [...this.#readings], alerts: [...this.#alerts] };
  }
}
