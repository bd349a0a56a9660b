/**
 * Tests for `@logErrors` and `@handleErrors(defaultValue)`.
 *
 * Vitest 4 transforms TypeScript with Vite 8's Oxc, which leaves standard (TC39) decorators
 * untouched, and Node 20 cannot parse them: `@logErrors` written in this file fails with
 * "SyntaxError: Invalid or unexpected token". So the decorated classes live in FIXTURE below
 * and are compiled by TypeScript itself (as `npm run build` compiles the project), then run
 * against the same decorator module this file imports. One test type-checks FIXTURE, and
 * TYPE_CASES with the misuses TypeScript must reject, with the project's compiler options.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import * as errors from "../src/errors.js";
import { PluginTypeMismatchError } from "../src/errors.js";
import * as decorators from "../src/plugins/decorators.js";
import { handleErrors, logErrors } from "../src/plugins/decorators.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIXTURE_FILE = path.join(ROOT, "test", "__decorators_fixture__.ts");
const TYPE_CASES_FILE = path.join(ROOT, "test", "__decorators_type_cases__.ts");

const FIXTURE = `
import { handleErrors, logErrors } from "../src/plugins/decorators.js";

export interface Log {
  error(obj: { err: unknown; method: string }, msg: string): void;
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

function check(n: number): number {
  if (n < 0) throw new RangeError(\`negative: \${n}\`);
  return n;
}

function* items(n: number, failAt: number): Generator<number> {
  for (let i = 0; i < n; i++) {
    if (i === failAt) throw new RangeError(\`item \${i}\`);
    yield i;
  }
}

export class Kinds {
  readonly cleanups: string[] = [];

  constructor(readonly logger?: Log) {}

  @logErrors
  plain(n: number): number {
    return check(n) * 2;
  }

  @handleErrors(-1)
  plainSafe(n: number): number {
    return check(n) * 2;
  }

  @logErrors
  async asyncFn(n: number) {
    await tick();
    return check(n) * check(n);
  }

  @handleErrors(0)
  async calc(n: number) {
    await tick();
    return check(n) * check(n);
  }

  @logErrors
  *gen(n: number, failAt = -1) {
    try {
      yield* items(n, failAt);
      return "done";
    } finally {
      this.cleanups.push("gen");
    }
  }

  @handleErrors(null)
  *genSafe(n: number, failAt = -1): Generator<number, string | undefined> {
    try {
      yield* items(n, failAt);
      return "done";
    } finally {
      this.cleanups.push("genSafe");
    }
  }

  @logErrors
  async *agen(n: number, failAt = -1) {
    try {
      for (const item of items(n, failAt)) {
        await tick();
        yield item;
      }
      return "done";
    } finally {
      this.cleanups.push("agen");
    }
  }

  @handleErrors(null)
  async *agenSafe(n: number, failAt = -1): AsyncGenerator<number, string | undefined> {
    try {
      for (const item of items(n, failAt)) {
        await tick();
        yield item;
      }
      return "done";
    } finally {
      this.cleanups.push("agenSafe");
    }
  }

  /** Echoes what next() sends and what throw() injects, to show both reach the method. */
  @logErrors
  *echo(): Generator<string, string, string> {
    let got = yield "ready";
    try {
      got = yield \`got \${got}\`;
    } catch (err) {
      got = yield \`caught \${(err as Error).message}\`;
    }
    return \`last \${got}\`;
  }

  @logErrors
  async *asyncEcho(): AsyncGenerator<string, string, string> {
    let got = yield "ready";
    try {
      got = yield \`got \${got}\`;
    } catch (err) {
      got = yield \`caught \${(err as Error).message}\`;
    }
    return \`last \${got}\`;
  }

  // Plain (not async) methods that return promises.
  @logErrors
  promised(fail: boolean): Promise<string> {
    return fail ? Promise.reject(new Error("rejected")) : Promise.resolve("ok");
  }

  @handleErrors("fallback")
  promisedSafe(fail: boolean): Promise<string> {
    return fail ? Promise.reject(new Error("rejected")) : Promise.resolve("ok");
  }

  // Decorated methods calling decorated methods.
  @logErrors
  async outer(n: number) {
    return (await this.asyncFn(n)) + 1;
  }

  @handleErrors(-1)
  async outerSafe(n: number) {
    return this.outer(n);
  }

  @handleErrors(-1)
  *outerGen(n: number): Generator<number, undefined> {
    yield this.plain(n);
    return undefined;
  }

  @handleErrors(0)
  static staticCalc(n: number): number {
    return check(n);
  }
}

/** Like a Plugin made outside a core: reading \`logger\` throws. */
export class Detached {
  get logger(): Log {
    throw new Error("no core");
  }

  @logErrors
  run(): never {
    throw new TypeError("x is not a function");
  }
}

// The decorated methods keep their types.
const kinds = new Kinds();
export const typed: [
  number,
  Promise<number>,
  Promise<number>,
  Generator<number, string, unknown>,
  AsyncGenerator<number, string, unknown>,
  Promise<string>,
] = [
  kinds.plain(1),
  kinds.asyncFn(1),
  kinds.calc(1),
  kinds.gen(1),
  kinds.agen(1),
  kinds.promisedSafe(false),
];
`;

/** Misuses TypeScript must reject; each error is expected by a @ts-expect-error. */
const TYPE_CASES = `
import { handleErrors, logErrors } from "../src/plugins/decorators.js";

export class Cases {
  // @ts-expect-error a getter is not a method
  @logErrors get total() {
    return 1;
  }

  // @ts-expect-error a field is not a method
  @logErrors count = 1;

  // @ts-expect-error handleErrors needs its default value
  @handleErrors plain() {
    return 1;
  }

  // @ts-expect-error a string cannot stand in for a number
  @handleErrors("none") async calc(n: number) {
    return n * n;
  }

  // @ts-expect-error a stopped generator returns undefined, which its type does not allow
  @handleErrors(0) *items(): Generator<number, string> {
    yield 1;
    return "done";
  }

  @handleErrors(null) nullable(): string | null {
    return "a";
  }

  // A method whose result is ignored takes any default.
  @handleErrors(null) async onEnable() {}
}
`;

// ---------------------------------------------------------------------------
// Compiling and running the fixtures.

interface Call {
  obj: { err: unknown; method: string };
  msg: string;
}

interface FakeLogger {
  calls: Call[];
  error(obj: { err: unknown; method: string }, msg: string): void;
}

function fakeLogger(): FakeLogger {
  const calls: Call[] = [];
  return { calls, error: (obj, msg) => calls.push({ obj, msg }) };
}

interface KindsInstance {
  readonly cleanups: string[];
  plain(n: number): number;
  plainSafe(n: number): number;
  asyncFn(n: number): Promise<number>;
  calc(n: number): Promise<number>;
  gen(n: number, failAt?: number): Generator<number, string | undefined, unknown>;
  genSafe(n: number, failAt?: number): Generator<number, string | undefined, unknown>;
  agen(n: number, failAt?: number): AsyncGenerator<number, string | undefined, unknown>;
  agenSafe(n: number, failAt?: number): AsyncGenerator<number, string | undefined, unknown>;
  echo(): Generator<string, string, string>;
  asyncEcho(): AsyncGenerator<string, string, string>;
  promised(fail: boolean): Promise<string>;
  promisedSafe(fail: boolean): Promise<string>;
  outer(n: number): Promise<number>;
  outerSafe(n: number): Promise<number>;
  outerGen(n: number): Generator<number, undefined, unknown>;
}

type MethodName = Exclude<keyof KindsInstance, "cleanups">;

interface Fixture {
  Kinds: {
    new (logger?: FakeLogger): KindsInstance;
    prototype: KindsInstance;
    staticCalc(n: number): number;
  };
  Detached: new () => { run(): never };
}

const MODULES: Record<string, unknown> = {
  "../src/plugins/decorators.js": decorators,
  "../src/errors.js": errors,
};

/** Compiles TypeScript with standard decorators as tsc does, and runs it as a module. */
function run<T>(source: string): T {
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { target: ts.ScriptTarget.ES2023, module: ts.ModuleKind.CommonJS },
  });
  const require = (specifier: string): unknown => {
    if (!(specifier in MODULES)) throw new Error(`fixture imports unknown module ${specifier}`);
    return MODULES[specifier];
  };
  const module = { exports: {} as Record<string, unknown> };
  new Function("require", "module", "exports", outputText)(require, module, module.exports);
  return module.exports as T;
}

let fixture: Fixture;

beforeAll(() => {
  fixture = run<Fixture>(FIXTURE);
});

afterEach(() => {
  vi.restoreAllMocks();
});

function kinds(): { plugin: KindsInstance; logger: FakeLogger } {
  const logger = fakeLogger();
  return { plugin: new fixture.Kinds(logger), logger };
}

function kindOf(name: MethodName): string {
  return fixture.Kinds.prototype[name].constructor.name;
}

async function collect<T, R>(
  stream: AsyncGenerator<T, R, unknown>,
): Promise<{ items: T[]; result: R }> {
  const items: T[] = [];
  for (;;) {
    const step = await stream.next();
    if (step.done) return { items, result: step.value };
    items.push(step.value);
  }
}

function collectSync<T, R>(stream: Generator<T, R, unknown>): { items: T[]; result: R } {
  const items: T[] = [];
  for (;;) {
    const step = stream.next();
    if (step.done) return { items, result: step.value };
    items.push(step.value);
  }
}

/** A context like the one the runtime passes, for applying a decorator by hand. */
function fakeContext(kind: DecoratorContext["kind"], name: string): ClassMethodDecoratorContext {
  return {
    kind,
    name,
    static: false,
    private: false,
    access: { has: () => true, get: () => undefined },
    addInitializer: () => {},
    metadata: {},
  } as unknown as ClassMethodDecoratorContext;
}

// ---------------------------------------------------------------------------

describe("type checking", () => {
  it("accepts the fixture and rejects the misuses, with the project's compiler options", () => {
    const config = ts.readConfigFile(path.join(ROOT, "tsconfig.json"), ts.sys.readFile);
    const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT);
    options.noEmit = true;
    const sources = new Map([
      [FIXTURE_FILE, FIXTURE],
      [TYPE_CASES_FILE, TYPE_CASES],
    ]);
    const host = ts.createCompilerHost(options);
    const { getSourceFile, fileExists, readFile } = host;
    host.fileExists = (file) => sources.has(path.resolve(file)) || fileExists.call(host, file);
    host.readFile = (file) => sources.get(path.resolve(file)) ?? readFile.call(host, file);
    host.getSourceFile = (file, language, ...rest) => {
      const text = sources.get(path.resolve(file));
      if (text !== undefined) return ts.createSourceFile(file, text, language);
      return getSourceFile.call(host, file, language, ...rest);
    };
    const program = ts.createProgram([FIXTURE_FILE, TYPE_CASES_FILE], options, host);
    const checked = [FIXTURE_FILE, TYPE_CASES_FILE, path.join(ROOT, "src/plugins/decorators.ts")];
    const problems = checked.flatMap((file) => {
      const source = program.getSourceFile(file);
      if (source === undefined) return [`${file} was not part of the program`];
      return ts
        .getPreEmitDiagnostics(program, source)
        .map(
          (d) => `${path.basename(file)}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`,
        );
    });
    expect(problems).toEqual([]);
  }, 60_000);
});

describe("plain methods", () => {
  it("pass the result through", () => {
    const { plugin, logger } = kinds();
    expect(plugin.plain(2)).toBe(4);
    expect(plugin.plainSafe(2)).toBe(4);
    expect(logger.calls).toEqual([]);
  });

  it("logErrors logs to this.logger and rethrows", () => {
    const { plugin, logger } = kinds();
    let thrown: unknown;
    try {
      plugin.plain(-1);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(RangeError);
    expect(logger.calls).toEqual([
      { obj: { err: thrown, method: "plain" }, msg: "plain failed: RangeError: negative: -1" },
    ]);
  });

  it("handleErrors logs and returns the default", () => {
    const { plugin, logger } = kinds();
    expect(plugin.plainSafe(-1)).toBe(-1);
    expect(logger.calls.map((c) => c.msg)).toEqual(["plainSafe failed: RangeError: negative: -1"]);
    expect(logger.calls[0]?.obj.method).toBe("plainSafe");
  });

  it("work on static methods", () => {
    expect(fixture.Kinds.staticCalc(3)).toBe(3);
    vi.spyOn(console, "error").mockImplementation(() => {});
    expect(fixture.Kinds.staticCalc(-3)).toBe(0);
  });

  it("keep their kind, name and arity", () => {
    expect(kindOf("plain")).toBe("Function");
    expect(kindOf("plainSafe")).toBe("Function");
    expect(fixture.Kinds.prototype.plain.name).toBe("plain");
    expect(fixture.Kinds.prototype.plain.length).toBe(1);
  });

  describe("returning a promise", () => {
    it("pass the resolved value through", async () => {
      const { plugin, logger } = kinds();
      await expect(plugin.promised(false)).resolves.toBe("ok");
      await expect(plugin.promisedSafe(false)).resolves.toBe("ok");
      expect(logger.calls).toEqual([]);
    });

    it("logErrors logs the rejection and rejects with it", async () => {
      const { plugin, logger } = kinds();
      const thrown = await plugin.promised(true).catch((err: unknown) => err);
      expect(thrown).toBeInstanceOf(Error);
      expect((thrown as Error).message).toBe("rejected");
      expect(logger.calls).toEqual([
        { obj: { err: thrown, method: "promised" }, msg: "promised failed: Error: rejected" },
      ]);
    });

    it("handleErrors resolves to the default", async () => {
      const { plugin, logger } = kinds();
      await expect(plugin.promisedSafe(true)).resolves.toBe("fallback");
      expect(logger.calls.map((c) => c.msg)).toEqual(["promisedSafe failed: Error: rejected"]);
    });
  });
});

describe("async methods", () => {
  it("pass the result through", async () => {
    const { plugin, logger } = kinds();
    await expect(plugin.asyncFn(3)).resolves.toBe(9);
    await expect(plugin.calc(3)).resolves.toBe(9);
    expect(logger.calls).toEqual([]);
  });

  it("logErrors logs and rejects with the error", async () => {
    const { plugin, logger } = kinds();
    const thrown = await plugin.asyncFn(-2).catch((err: unknown) => err);
    expect(thrown).toBeInstanceOf(RangeError);
    expect(logger.calls).toEqual([
      { obj: { err: thrown, method: "asyncFn" }, msg: "asyncFn failed: RangeError: negative: -2" },
    ]);
  });

  it("handleErrors logs and resolves to the default", async () => {
    const { plugin, logger } = kinds();
    await expect(plugin.calc(-2)).resolves.toBe(0);
    expect(logger.calls.map((c) => c.msg)).toEqual(["calc failed: RangeError: negative: -2"]);
  });

  it("keep their kind", () => {
    expect(kindOf("asyncFn")).toBe("AsyncFunction");
    expect(kindOf("calc")).toBe("AsyncFunction");
    expect(kindOf("outer")).toBe("AsyncFunction");
  });
});

describe("generators", () => {
  it("pass items and the return value through", () => {
    const { plugin, logger } = kinds();
    expect(collectSync(plugin.gen(3))).toEqual({ items: [0, 1, 2], result: "done" });
    expect(collectSync(plugin.genSafe(3))).toEqual({ items: [0, 1, 2], result: "done" });
    expect(logger.calls).toEqual([]);
    expect(plugin.cleanups).toEqual(["gen", "genSafe"]);
  });

  it("logErrors logs an error thrown mid-iteration and rethrows it", () => {
    const { plugin, logger } = kinds();
    const seen: number[] = [];
    let thrown: unknown;
    try {
      for (const item of plugin.gen(5, 2)) seen.push(item);
    } catch (err) {
      thrown = err;
    }
    expect(seen).toEqual([0, 1]);
    expect(thrown).toBeInstanceOf(RangeError);
    expect(logger.calls).toEqual([
      { obj: { err: thrown, method: "gen" }, msg: "gen failed: RangeError: item 2" },
    ]);
  });

  it("handleErrors logs, keeps the items before the error, then ends", () => {
    const { plugin, logger } = kinds();
    expect(collectSync(plugin.genSafe(5, 2))).toEqual({ items: [0, 1], result: undefined });
    expect(logger.calls.map((c) => c.msg)).toEqual(["genSafe failed: RangeError: item 2"]);
  });

  it("keep their kind", () => {
    expect(kindOf("gen")).toBe("GeneratorFunction");
    expect(kindOf("genSafe")).toBe("GeneratorFunction");
  });

  it("run the source's finally when the consumer breaks early, without logging", () => {
    const { plugin, logger } = kinds();
    for (const item of plugin.gen(10)) if (item === 1) break;
    for (const item of plugin.genSafe(10)) if (item === 1) break;
    expect(plugin.cleanups).toEqual(["gen", "genSafe"]);
    expect(logger.calls).toEqual([]);
  });

  it("pass next(value) and throw(err) to the source", () => {
    const { plugin, logger } = kinds();
    const echo = plugin.echo();
    expect(echo.next("ignored").value).toBe("ready");
    expect(echo.next("a").value).toBe("got a");
    expect(echo.throw(new Error("injected")).value).toBe("caught injected");
    expect(echo.next("b")).toEqual({ value: "last b", done: true });
    expect(logger.calls).toEqual([]);
  });
});

describe("async generators", () => {
  it("pass items and the return value through", async () => {
    const { plugin, logger } = kinds();
    await expect(collect(plugin.agen(3))).resolves.toEqual({ items: [0, 1, 2], result: "done" });
    await expect(collect(plugin.agenSafe(3))).resolves.toEqual({
      items: [0, 1, 2],
      result: "done",
    });
    expect(logger.calls).toEqual([]);
  });

  it("logErrors logs an error thrown mid-iteration and rethrows it", async () => {
    const { plugin, logger } = kinds();
    const seen: number[] = [];
    let thrown: unknown;
    try {
      for await (const item of plugin.agen(5, 2)) seen.push(item);
    } catch (err) {
      thrown = err;
    }
    expect(seen).toEqual([0, 1]);
    expect(thrown).toBeInstanceOf(RangeError);
    expect(logger.calls).toEqual([
      { obj: { err: thrown, method: "agen" }, msg: "agen failed: RangeError: item 2" },
    ]);
  });

  it("handleErrors logs, keeps the items before the error, then ends", async () => {
    const { plugin, logger } = kinds();
    await expect(collect(plugin.agenSafe(5, 2))).resolves.toEqual({
      items: [0, 1],
      result: undefined,
    });
    expect(logger.calls.map((c) => c.msg)).toEqual(["agenSafe failed: RangeError: item 2"]);
  });

  it("keep their kind", () => {
    expect(kindOf("agen")).toBe("AsyncGeneratorFunction");
    expect(kindOf("agenSafe")).toBe("AsyncGeneratorFunction");
  });

  it("run the source's finally when the consumer breaks early, without logging", async () => {
    const { plugin, logger } = kinds();
    for await (const item of plugin.agen(10)) if (item === 1) break;
    for await (const item of plugin.agenSafe(10)) if (item === 1) break;
    expect(plugin.cleanups).toEqual(["agen", "agenSafe"]);
    expect(logger.calls).toEqual([]);
  });

  it("pass next(value) and throw(err) to the source", async () => {
    const { plugin, logger } = kinds();
    const echo = plugin.asyncEcho();
    expect((await echo.next("ignored")).value).toBe("ready");
    expect((await echo.next("a")).value).toBe("got a");
    expect((await echo.throw(new Error("injected"))).value).toBe("caught injected");
    expect(await echo.next("b")).toEqual({ value: "last b", done: true });
    expect(logger.calls).toEqual([]);
  });
});

describe("logging", () => {
  it("falls back to console.error when there is no logger", () => {
    const spy = vi.spyOn(console, "error").mockImplementation(() => {});
    const plugin = new fixture.Kinds();
    expect(() => plugin.plain(-1)).toThrow(RangeError);
    expect(plugin.plainSafe(-4)).toBe(-1);
    expect(spy).toHaveBeenCalledTimes(2);
    expect(spy.mock.calls[0]?.[0]).toBe("plain failed: RangeError: negative: -1");
    expect(spy.mock.calls[0]?.[1]).toBeInstanceOf(RangeError);
    expect(spy.mock.calls[1]?.[0]).toBe("plainSafe failed: RangeError: negative: -4");
  });

  it("falls back to console.error when reading the logger throws", () => {
    const spy = vi.spyOn(console, "error").mockImplementation(() => {});
    expect(() => new fixture.Detached().run()).toThrow(TypeError);
    expect(spy).toHaveBeenCalledOnce();
    expect(spy.mock.calls[0]?.[0]).toBe("run failed: TypeError: x is not a function");
  });

  it("falls back to console.error when the logger has no error function", () => {
    const spy = vi.spyOn(console, "error").mockImplementation(() => {});
    const plugin = new fixture.Kinds({ info() {} } as unknown as FakeLogger);
    expect(plugin.plainSafe(-1)).toBe(-1);
    expect(spy).toHaveBeenCalledOnce();
  });

  it("logs an error once through nested decorated async calls", async () => {
    const { plugin, logger } = kinds();
    const thrown = await plugin.outer(-1).catch((err: unknown) => err);
    expect(thrown).toBeInstanceOf(RangeError);
    await expect(plugin.outerSafe(-1)).resolves.toBe(-1);
    // asyncFn logged each of the two errors; outer and outerSafe saw them already logged.
    expect(logger.calls.map((c) => c.obj.method)).toEqual(["asyncFn", "asyncFn"]);
  });

  it("logs an error once when a decorated generator calls a decorated method", () => {
    const { plugin, logger } = kinds();
    expect(collectSync(plugin.outerGen(-1))).toEqual({ items: [], result: undefined });
    expect(logger.calls.map((c) => c.obj.method)).toEqual(["plain"]);
  });

  it("logs thrown non-objects every time", () => {
    const spy = vi.spyOn(console, "error").mockImplementation(() => {});
    const context = fakeContext("method", "raw");
    const raw = handleErrors("default")(() => {
      throw "plain string";
    }, context);
    expect(raw()).toBe("default");
    expect(raw()).toBe("default");
    expect(spy.mock.calls.map((call) => call[0])).toEqual([
      "raw failed: plain string",
      "raw failed: plain string",
    ]);
  });
});

describe("decorating something that is not a method", () => {
  function mismatch(apply: () => unknown): PluginTypeMismatchError {
    try {
      apply();
    } catch (err) {
      expect(err).toBeInstanceOf(PluginTypeMismatchError);
      expect((err as PluginTypeMismatchError).code).toBe("PLUGIN_TYPE_MISMATCH");
      return err as PluginTypeMismatchError;
    }
    throw new Error("expected a PluginTypeMismatchError");
  }

  it("throws for a getter", () => {
    const getter = function total() {
      return 1;
    };
    const fromLog = mismatch(() => logErrors(getter, fakeContext("getter", "total")));
    expect(fromLog.message).toBe(
      '@logErrors can only decorate methods (plain, async, generator or async generator), but it was applied to getter "total"',
    );
    const fromHandle = mismatch(() => handleErrors(0)(getter, fakeContext("getter", "total")));
    expect(fromHandle.message).toMatch(
      /^@handleErrors can only decorate methods .*getter "total"$/,
    );
  });

  it("throws for a field", () => {
    const field = undefined as unknown as () => void;
    const fromLog = mismatch(() => logErrors(field, fakeContext("field", "count")));
    expect(fromLog.message).toMatch(/^@logErrors can only decorate methods .*field "count"$/);
    const fromHandle = mismatch(() => handleErrors(null)(field, fakeContext("field", "count")));
    expect(fromHandle.message).toMatch(/^@handleErrors can only decorate methods .*field "count"$/);
  });

  it("throws for a setter, an auto-accessor and a class", () => {
    const fn = () => {};
    expect(mismatch(() => logErrors(fn, fakeContext("setter", "value"))).message).toMatch(
      /setter "value"$/,
    );
    expect(mismatch(() => logErrors(fn, fakeContext("accessor", "size"))).message).toMatch(
      /auto-accessor "size"$/,
    );
    expect(mismatch(() => logErrors(fn, fakeContext("class", "Thing"))).message).toMatch(
      /class Thing$/,
    );
  });

  it("throws for a method slot holding something that is not a function", () => {
    const notAFunction = 42 as unknown as () => void;
    expect(mismatch(() => logErrors(notAFunction, fakeContext("method", "calc"))).message).toBe(
      '@logErrors can only decorate methods (plain, async, generator or async generator), but "calc" is number, not a function',
    );
  });

  it("throws when the class is defined, with real decorator syntax", () => {
    const getter = mismatch(() =>
      run(`
        import { logErrors } from "../src/plugins/decorators.js";
        export class Bad {
          @logErrors get total() { return 1; }
        }
      `),
    );
    expect(getter.message).toMatch(/^@logErrors .*getter "total"$/);
    const field = mismatch(() =>
      run(`
        import { handleErrors } from "../src/plugins/decorators.js";
        export class Bad {
          @handleErrors(0) count = 1;
        }
      `),
    );
    expect(field.message).toMatch(/^@handleErrors .*field "count"$/);
  });

  it("throws at decoration time for @handleErrors used without its default", () => {
    const bare = mismatch(() =>
      run(`
        import { handleErrors } from "../src/plugins/decorators.js";
        export class Bad {
          @handleErrors calc() { return 1; }
        }
      `),
    );
    expect(bare.message).toBe(
      '@handleErrors needs a default value: write @handleErrors(defaultValue) on method "calc", not @handleErrors',
    );
  });
});
