/**
 * `GET /openapi.json` and `aio openapi`: OpenAPI 3.1 of `/execute` and `/execute_stream` for the
 * endpoints other nodes may call, checked by a standard validator
 * (@seriousme/openapi-schema-validator); calls that a node accepts fit the document's schemas,
 * and calls it refuses do not; it follows plugins being disabled; with a secret it is signed
 * like every route.
 */
import { randomBytes } from "node:crypto";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, describe, expect, it } from "vitest";
import { aio } from "../cli/helpers.js";
import { base, cleanup, LOOPBACK, pluginDir, rep, startNode } from "./helpers.js";

const dir = pluginDir({
  Svc: {
    body: `
  add(a: number, b = 1) { return a + b; }
  greet(name: string) { return "hi " + name; }
  *items(n: number) { for (let i = 0; i < n; i++) yield i; }
  hidden() { return 1; }
  anything(value: unknown) { return value; }`,
    endpoints: [
      rep("add", [
        { name: "a", type: "int", required: true },
        { name: "b", type: "int", default: 1 },
      ]),
      rep("greet", [{ name: "name", type: "str", required: true }]),
      rep("items", [{ name: "n", type: "int" }]),
      rep("hidden", [], { remote: false }),
      rep("anything"),
    ],
  },
  Private: { remote: false, body: `who() { return 1; }`, endpoints: [rep("who")] },
});

afterAll(cleanup);

async function validDocument(doc: unknown): Promise<Record<string, unknown>> {
  const validator = new Validator();
  // The validator resolves references in what it is given: it gets a copy.
  const result = await validator.validate(structuredClone(doc) as never);
  expect(result.errors ?? [], JSON.stringify(result.errors)).toEqual([]);
  expect(result.valid).toBe(true);
  expect(validator.version).toBe("3.1");
  return validator.resolveRefs() as Record<string, unknown>;
}

describe("GET /openapi.json", () => {
  it("is valid OpenAPI 3.1 listing exactly the endpoints other nodes may call", async () => {
    const node = await startNode({
      hostname: "api",
      dir,
      plugins: ["Svc", "Private"],
      networking: LOOPBACK,
    });
    const response = await fetch(`${base(node)}/openapi.json`);
    expect(response.status).toBe(200);
    const doc = (await response.json()) as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, Record<string, unknown>> };
    };
    await validDocument(doc);
    expect(doc).toEqual(node.openApiDocument());
    expect(Object.keys(doc.paths).sort()).toEqual(["/execute", "/execute_stream"]);
    expect(Object.keys(doc.components.schemas).sort()).toEqual([
      "ErrorAnswer",
      "Svc.add",
      "Svc.anything",
      "Svc.greet",
      "Svc.items",
    ]);
    expect(doc.components.schemas["Svc.items"]?.["x-aio-kind"]).toBe("generator");
  });

  it("the schemas accept the calls a node accepts and refuse what it refuses", async () => {
    const node = await startNode({ hostname: "api2", dir, plugins: ["Svc"], networking: LOOPBACK });
    const resolved = (await validDocument(node.openApiDocument())) as {
      components: { schemas: Record<string, object> };
    };
    const ajv = new Ajv2020({ strict: false });
    const fits = (name: string, body: unknown) =>
      ajv.validate(resolved.components.schemas[name] as object, body);
    const call = (body: unknown) =>
      fetch(`${base(node)}/execute`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then((r) => r.status);
    const cases: Array<[string, unknown]> = [
      ["Svc.add", { plugin: "Svc", method: "add", args: { a: 2, b: 3 } }],
      ["Svc.add", { plugin: "Svc", method: "add", args: { a: 2 } }],
      ["Svc.add", { plugin: "Svc", method: "add", args: [2, 3] }],
      ["Svc.add", { plugin: "Svc", method: "add", args: 2 }],
      ["Svc.add", { plugin: "Svc", method: "add", args: { a: "two" } }],
      ["Svc.add", { plugin: "Svc", method: "add", args: { b: 2 } }],
      ["Svc.add", { plugin: "Svc", method: "add", args: { a: 1, c: 2 } }],
      ["Svc.add", { plugin: "Svc", method: "add", args: [1, 2, 3] }],
      ["Svc.greet", { plugin: "Svc", method: "greet", args: "Ann" }],
      ["Svc.greet", { plugin: "Svc", method: "greet", args: 5 }],
      ["Svc.anything", { plugin: "Svc", method: "anything", args: { any: ["thing"] } }],
    ];
    for (const [name, body] of cases) {
      const status = await call(body);
      expect(fits(name, body), `${JSON.stringify(body)} answered ${status}`).toBe(status === 200);
    }
  });

  it("follows the plugins: a disabled one's endpoints leave the document", async () => {
    const node = await startNode({ hostname: "api3", dir, plugins: ["Svc"], networking: LOOPBACK });
    await node.disablePlugin("Svc");
    const doc = (await (await fetch(`${base(node)}/openapi.json`)).json()) as {
      paths: object;
    };
    await validDocument(doc);
    expect(doc.paths).toEqual({});
  });

  it("with a secret: refused unsigned, printed by aio openapi --node with the secret", async () => {
    const secret = `openapi-${randomBytes(16).toString("hex")}`;
    const node = await startNode({
      hostname: "api4",
      dir,
      plugins: ["Svc"],
      networking: { ...LOOPBACK, secret },
    });
    expect((await fetch(`${base(node)}/openapi.json`)).status).toBe(401);
    const r = await aio(["openapi", "--node", base(node)], { env: { AIO_SECRET: secret } });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { components: { securitySchemes?: object } };
    await validDocument(doc);
    expect(doc.components.securitySchemes).toHaveProperty("aioSignature");
  });
});
