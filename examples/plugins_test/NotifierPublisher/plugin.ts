import { isDeepStrictEqual } from "node:util";
import { Plugin } from "aio-assistant-core";

interface Received {
  readings: Array<{ room: string; celsius: number }>;
  alerts: Array<{ topic: string; publisher: string; args: unknown }>;
}

/**
 * The original's NotifierPublisher: publishes readings and an alert without naming who
 * receives them, asks topics for answers, and finds endpoints by tag. With `run_on_enable` it
 * checks each case once the node is up and logs a PASS or FAIL line per case.
 */
export class NotifierPublisher extends Plugin {
  #stop: AbortController | undefined;

  override onEnable(): void {
    if (!(this.arguments as { run_on_enable?: boolean } | undefined)?.run_on_enable) return;
    const stop = new AbortController();
    this.#stop = stop;
    // Not awaited: the node finishes starting while the cases run.
    void this.run_cases().then(
      (outcome) => {
        if (!stop.signal.aborted) this.logger.info(`topics_run: ${outcome}`);
      },
      (error: unknown) => {
        if (!stop.signal.aborted && (error as { code?: string }).code !== "CLOSED") {
          this.logger.error(`topics_run: FAIL - ${(error as Error).message}`);
        }
      },
    );
  }

  override onDisable(): void {
    this.#stop?.abort();
  }

  /** Publishes a reading for a room; resolves to how many subscribers took it. */
  publish_reading(room: string, celsius: number): Promise<number> {
    return this.notify(`sensor/${room}/temperature`, { room, celsius });
  }

  #check(id: string, got: unknown, expected: unknown): boolean {
    const passed = isDeepStrictEqual(got, expected);
    const line = `[${id}] ${passed ? "PASS" : "FAIL"} - got=${JSON.stringify(got)} expected=${JSON.stringify(expected)}`;
    if (passed) this.logger.info(line);
    else this.logger.error(line);
    return passed;
  }

  async #received(): Promise<Received> {
    return this.execute<Received>("NotifierSubscriber", "received");
  }

  /** Waits (briefly) until the subscriber has what was published: delivery is asynchronous. */
  async #until(ready: (received: Received) => boolean): Promise<Received> {
    for (let i = 0; i < 100; i++) {
      const received = await this.#received();
      if (ready(received)) return received;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.#received();
  }

  /** Runs every case; "OK" or how many failed. */
  async run_cases(): Promise<string> {
    // Waits for the subscriber to be enabled: a publish reaches only enabled plugins.
    await this.#received();
    const results: boolean[] = [];
    results.push(this.#check("topic_notify_count", await this.publish_reading("kitchen", 21.5), 1));
    const after = await this.#until((r) => r.readings.length > 0);
    results.push(
      this.#check("topic_manifest_subscriber", after.readings.at(-1), {
        room: "kitchen",
        celsius: 21.5,
      }),
    );
    results.push(
      this.#check("topic_wildcard_no_match", await this.notify("sensor/kitchen/humidity", 40), 0),
    );
    await this.notify("alerts/door/front", { open: true });
    const alerts = await this.#until((r) => r.alerts.length > 0);
    results.push(
      this.#check("topic_code_subscriber", alerts.alerts.at(-1), {
        topic: "alerts/door/front",
        publisher: "NotifierPublisher",
        args: { open: true },
      }),
    );
    results.push(this.#check("topic_request", await this.requestTopic("convert/c_to_f", 100), 212));
    const counted: number[] = [];
    for await (const n of this.requestTopicStream<number>("count/up", 3)) counted.push(n);
    results.push(this.#check("topic_request_stream", counted, [1, 2, 3]));
    const noHandler = await this.requestTopic("nobody/home").then(
      () => "answered",
      (error: { code?: string }) => error.code,
    );
    results.push(this.#check("topic_no_handler", noHandler, "NO_HANDLER"));
    const tagged = await this.findEndpointsByTag("sensor");
    results.push(
      this.#check("tags_find", tagged.map((t) => `${t.plugin}.${t.endpoint.access_name}`).sort(), [
        "NotifierPublisher.publish_reading",
        "NotifierSubscriber.on_temperature",
        "NotifierSubscriber.received",
      ]),
    );
    const failed = results.filter((passed) => !passed).length;
    return failed === 0 ? "OK" : `FAIL (${failed} failed)`;
  }
}
