/**
 * The node's HTTP interface as OpenAPI 3.1 (`GET /openapi.json`, `aio openapi`): `POST /execute`
 * and `POST /execute_stream` with one request schema per endpoint other nodes may call, its
 * `args` described from the manifest's argument types (named, positional, or the one value), so
 * any OpenAPI tool can check a call or generate a client. Built on request: it follows the
 * plugins as they are enabled, disabled and reloaded.
 */
import type { ManifestArgument } from "../config/types.js";
import { isStreamKind } from "../core/endpoint.js";
import type { TaggedEndpoint } from "../core/types.js";
import { REQUEST_ERROR_STATUS } from "../errors.js";

type Schema = Record<string, unknown>;

const TYPE_SCHEMAS: Record<string, Schema> = {
  int: { type: "integer" },
  float: { type: "number" },
  number: { type: "number" },
  str: { type: "string" },
  string: { type: "string" },
  bool: { type: "boolean" },
  boolean: { type: "boolean" },
  dict: { type: "object" },
  object: { type: "object" },
  list: { type: "array" },
  array: { type: "array" },
  any: {},
};

/** A value a call passes alone: one that is neither an array nor an object. */
const SCALAR = new Set(["int", "float", "number", "str", "string", "bool", "boolean"]);

function argumentSchema(argument: ManifestArgument): Schema {
  const schema: Schema = { ...(TYPE_SCHEMAS[argument.type] ?? {}) };
  if (argument.description) schema.description = argument.description;
  if (argument.default !== undefined) schema.default = argument.default;
  return schema;
}

/**
 * The named-arguments form alone, as a JSON Schema object: what tools (MCP) and forms offer,
 * where one object of arguments is the one way to call.
 */
export function namedArgumentsSchema(declared: ManifestArgument[]): Schema {
  const required = declared.filter((a) => a.required).map((a) => a.name);
  return {
    type: "object",
    properties: Object.fromEntries(declared.map((a) => [a.name, argumentSchema(a)])),
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };
}

/** The forms `args` may take for these declared arguments (docs/plugins.md, "Arguments"). */
function argsSchema(declared: ManifestArgument[]): Schema {
  // Without declared arguments the endpoint receives whatever is sent as its one argument.
  if (declared.length === 0) return { description: "passed to the endpoint as its one argument" };
  const required = declared.filter((a) => a.required).map((a) => a.name);
  let leading = 0;
  while (leading < declared.length && declared[leading]?.required) leading++;
  const forms: Schema[] = [
    { title: "named arguments", ...namedArgumentsSchema(declared) },
    {
      title: "positional arguments",
      type: "array",
      prefixItems: declared.map(argumentSchema),
      minItems: Math.max(leading, required.length > 0 ? 1 : 0),
      maxItems: declared.length,
    },
  ];
  // A value that is neither an array nor an object is the first argument, the others left out.
  const first = declared[0] as ManifestArgument;
  if (!declared.slice(1).some((a) => a.required)) {
    if (SCALAR.has(first.type)) {
      forms.push({ title: "the first argument alone", ...argumentSchema(first) });
    } else if (first.type === "any") {
      forms.push({
        title: "the first argument alone",
        ...argumentSchema(first),
        not: { type: ["object", "array"] },
      });
    }
  }
  return { anyOf: forms };
}

/** A component name: what OpenAPI allows of `Plugin.endpoint`. */
function componentName(plugin: string, method: string): string {
  return `${plugin}.${method}`.replace(/[^A-Za-z0-9._-]/g, "_");
}

const CALL_FIELDS: Schema = {
  plugin_uuid: { type: "string", description: "only this instance of the plugin" },
  author: { type: "string", description: "the calling plugin's name, when a plugin calls" },
  author_host: { type: "string", description: "the calling node's hostname" },
  request_id: { type: "string", description: "the call's id in logs and errors" },
  timeout_ms: {
    type: "number",
    minimum: 0,
    description: "what is left of the caller's deadline, in milliseconds",
  },
};

function callSchema({ plugin, endpoint }: TaggedEndpoint): Schema {
  const declared = endpoint.arguments;
  const needsArgs = declared.some((a) => a.required);
  return {
    title: `${plugin}.${endpoint.access_name}`,
    ...(endpoint.description ? { description: endpoint.description } : {}),
    type: "object",
    properties: {
      plugin: { const: plugin },
      method: { const: endpoint.access_name },
      args: argsSchema(declared),
      ...CALL_FIELDS,
    },
    required: needsArgs ? ["plugin", "method", "args"] : ["plugin", "method"],
    additionalProperties: false,
    ...(endpoint.tags.length > 0 ? { "x-aio-tags": endpoint.tags } : {}),
    "x-aio-kind": endpoint.kind,
  };
}

const ERROR_RESPONSE: Schema = {
  description:
    "The call failed: `code` says why (docs/api.md, Error codes), with the status of that code",
  content: {
    "application/json": { schema: { $ref: "#/components/schemas/ErrorAnswer" } },
  },
};

function operation(
  id: string,
  summary: string,
  calls: TaggedEndpoint[],
  ok: Schema,
  secured: boolean,
): Schema {
  return {
    post: {
      operationId: id,
      summary,
      requestBody: {
        required: true,
        content: {
          "application/json": {
            schema: {
              oneOf: calls.map((call) => ({
                $ref: `#/components/schemas/${componentName(call.plugin, call.endpoint.access_name)}`,
              })),
            },
          },
        },
      },
      responses: {
        "200": ok,
        ...Object.fromEntries(
          [...new Set(Object.values(REQUEST_ERROR_STATUS))]
            .sort()
            .map((status) => [String(status), ERROR_RESPONSE]),
        ),
      },
      ...(secured ? { security: [{ aioSignature: [] }] } : {}),
    },
  };
}

export interface OpenApiOptions {
  hostname: string;
  /** The package's version, for `info.version`. */
  version: string;
  /** The endpoints other nodes may call (both the plugin and the endpoint `remote: true`). */
  endpoints: TaggedEndpoint[];
  /** Whether the node has a secret: every request must then be signed. */
  secured: boolean;
}

export function openApiDocument(options: OpenApiOptions): Schema {
  const functions = options.endpoints.filter((e) => !isStreamKind(e.endpoint.kind));
  const streams = options.endpoints.filter((e) => isStreamKind(e.endpoint.kind));
  const paths: Schema = {};
  if (functions.length > 0) {
    paths["/execute"] = operation(
      "execute",
      "Call a function endpoint",
      functions,
      {
        description: "The endpoint's result (`null` for `undefined`)",
        content: {
          "application/json": {
            schema: {
              type: "object",
              properties: { result: {} },
              required: ["result"],
            },
          },
        },
      },
      options.secured,
    );
  }
  if (streams.length > 0) {
    paths["/execute_stream"] = operation(
      "executeStream",
      "Call a generator endpoint: its items, one JSON line each",
      streams,
      {
        description:
          'One JSON object per line: `{"item":…}` per item, then `{"end":true}`, or `{"error":{…}}` (docs/protocol.md)',
        content: { "application/x-ndjson": { schema: { type: "string" } } },
      },
      options.secured,
    );
  }
  const schemas: Schema = {
    ErrorAnswer: {
      type: "object",
      properties: {
        error: {
          type: "object",
          properties: {
            code: { type: "string", enum: Object.keys(REQUEST_ERROR_STATUS) },
            message: { type: "string" },
            request_id: { type: "string" },
            plugin: { type: "string" },
            method: { type: "string" },
            host: { type: "string" },
          },
          required: ["code", "message"],
        },
      },
      required: ["error"],
    },
  };
  for (const call of options.endpoints) {
    schemas[componentName(call.plugin, call.endpoint.access_name)] = callSchema(call);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: `AIO Core node "${options.hostname}"`,
      version: options.version,
      description:
        "The endpoints this node lets other nodes and HTTP clients call (docs/protocol.md). `args` may be named (an object), positional (an array) or, for one argument, the value itself.",
    },
    paths,
    components: {
      schemas,
      ...(options.secured
        ? {
            securitySchemes: {
              aioSignature: {
                type: "apiKey",
                in: "header",
                name: "x-aio-signature",
                description:
                  "An HMAC-SHA256 signature of the request, with x-aio-time, x-aio-nonce and x-aio-digest: docs/security.md, Requests",
              },
            },
          }
        : {}),
    },
  };
}
