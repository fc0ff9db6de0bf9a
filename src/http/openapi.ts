/** The API description: each route's documentation, from which the OpenAPI document is generated, and the 405 it implies. */

import type { Context } from "hono";
import { toJsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import { errorBody } from "../api/errors.ts";
import { AppError, ERROR_CODES, statusFor } from "../lib/errors.ts";
import { MAX_BODY_BYTES, type ServerEnv } from "./middleware.ts";

/** Who may call a route. */
export type Access = "public" | "user" | "admin";

/**
 * One answer of a route that is not an error (those are {@link RouteDoc.errors}): what it means,
 * and its body's schema per media type.
 */
export interface AnswerDoc {
  readonly description: string;
  /** The valibot schema of a JSON body; the route builds its answer through it (`satisfies`). */
  readonly json?: v.GenericSchema;
  /**
   * A text body: its media type (without parameters), what it holds, and, when its form is fixed,
   * the valibot string schema (a `v.regex`) it keeps to.
   */
  readonly text?: {
    readonly type: string;
    readonly description: string;
    readonly schema?: v.GenericSchema<string>;
  };
  /** Headers the answer carries, name to description. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * The description of one route, from which the OpenAPI document is generated:
 *
 * ```ts
 * deps.api.add({
 *   method: "get",
 *   path: "/capacity",
 *   summary: "How full each proxy role's trust policy is.",
 *   access: "admin",
 *   responses: { 200: { description: "Capacity by role", json: CapacityAnswer } },
 *   errors: { 502: "IAM failed" },
 * });
 * ```
 *
 * Errors every route of its kind can give need not be listed (see {@link impliedErrors}).
 */
export interface RouteDoc {
  readonly method: "get" | "post" | "delete";
  readonly path: string;
  readonly summary: string;
  readonly access: Access;
  /** The same valibot schema that validates the body. */
  readonly body?: v.GenericSchema;
  /** Request headers the route reads, name to description. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Answers by status, errors aside. */
  readonly responses: Readonly<Record<number, AnswerDoc>>;
  /**
   * Error answers (the {@link errorBody}, its code one of those {@link statusFor} gives the
   * status), status to what causes it; merged over {@link impliedErrors}.
   */
  readonly errors?: Readonly<Record<number, string>>;
}

/**
 * The errors a route gives by its kind alone: 500 always; 401 and 503 (the token's verifier cannot
 * be reached) behind a token; 403 for admin routes; 400 and 413 with a body.
 */
export function impliedErrors(doc: Pick<RouteDoc, "access" | "body">): Record<number, string> {
  const errors: Record<number, string> = {};
  if (doc.body) {
    errors[400] = "Bad body";
    errors[413] = `Body over ${MAX_BODY_BYTES} bytes`;
  }
  if (doc.access !== "public") {
    errors[401] = "Missing or bad token or API key";
    errors[503] = "The token's verifier cannot reach its keys or the platform";
  }
  if (doc.access === "admin") errors[403] = "Not an admin";
  errors[500] = "Unexpected error, details in the log";
  return errors;
}

/** Every method a path answers, as an `Allow` header lists them (HEAD wherever GET is). */
export function allowedMethods(routes: readonly RouteDoc[], path: string): string[] {
  const methods = routes.filter((r) => r.path === path).map((r) => r.method.toUpperCase());
  if (methods.includes("GET")) methods.push("HEAD");
  return [...new Set(methods)].sort();
}

/**
 * Converts a valibot schema to JSON Schema (2020-12, as OpenAPI 3.1 has it). Every `v.check` must be
 * followed in its pipe by `v.metadata({...})` giving its JSON-schema form, and anything else the
 * converter cannot express throws, so the document never says less than the server checks.
 */
export function jsonSchemaOf(schema: v.GenericSchema): Record<string, unknown> {
  assertChecksDescribed(schema);
  const { $schema: _, ...json } = toJsonSchema(schema, {
    target: "draft-2020-12",
    errorMode: "throw",
    // What a client sends: a pipe is described up to its first transformation.
    typeMode: "input",
    ignoreActions: ["check"],
  }) as Record<string, unknown>;
  return json;
}

// The actions of a schema's pipe with those of the pipes it wraps, in order, as the converter sees them.
function flatPipe(schema: unknown): { kind: string; type: string }[] {
  const pipe = (schema as { pipe?: unknown[] }).pipe;
  if (!pipe) return [];
  return [...flatPipe(pipe[0]), ...(pipe.slice(1) as { kind: string; type: string }[])];
}

// Walks a schema: a check without metadata after it is a rule the document would not show.
function assertChecksDescribed(schema: unknown, where = "schema"): void {
  if (typeof schema !== "object" || schema === null) return;
  const pipe = flatPipe(schema);
  pipe.forEach((item, i) => {
    if (item.type === "check" && !pipe.slice(i + 1).some((later) => later.type === "metadata")) {
      throw new Error(
        `Cannot describe ${where}: a v.check has no v.metadata after it giving its JSON-schema form`,
      );
    }
  });
  // A piped schema carries its root's fields, so its entries, items and options are its own.
  const s = schema as {
    entries?: Record<string, unknown>;
    item?: unknown;
    options?: unknown;
    wrapped?: unknown;
    rest?: unknown;
    key?: unknown;
    value?: unknown;
  };
  for (const [key, entry] of Object.entries(s.entries ?? {})) {
    assertChecksDescribed(entry, `${where}.${key}`);
  }
  const options = Array.isArray(s.options) ? s.options : [];
  for (const n of [s.item, ...options, s.wrapped, s.rest, s.key, s.value]) {
    assertChecksDescribed(n, where);
  }
}

const errorRef = (status: number) => ({ $ref: `#/components/schemas/Error${status}` });
const JSON_TYPE = "application/json";

/** Collects route descriptions as routes register, so the document can never drift from them. */
export class ApiDescription {
  readonly routes: RouteDoc[] = [];
  add(doc: RouteDoc): void {
    this.routes.push(doc);
  }

  /** The OpenAPI 3.1 document. */
  document(): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    const errorStatuses = new Set<number>([404, 405]);
    for (const r of this.routes) {
      const answers = Object.entries(r.responses).map(([status, a]) => [status, {
        description: a.description,
        ...(a.headers ? { headers: headersOf(a.headers) } : {}),
        content: {
          ...(a.json ? { [JSON_TYPE]: { schema: jsonSchemaOf(a.json) } } : {}),
          ...(a.text
            ? {
              [a.text.type]: {
                schema: {
                  ...(a.text.schema ? jsonSchemaOf(a.text.schema) : { type: "string" }),
                  description: a.text.description,
                },
              },
            }
            : {}),
        },
      }]);
      const both = Object.keys(r.errors ?? {}).filter((status) => status in r.responses);
      if (both.length > 0) {
        throw new Error(`${r.method} ${r.path}: status ${both} is both an answer and an error`);
      }
      // An answer of its own (the 503 of /readyz) replaces an implied error of the same status.
      const implied = Object.entries(impliedErrors(r)).filter(([status]) =>
        !(status in r.responses)
      );
      const errors = [...implied, ...Object.entries(r.errors ?? {})].map((
        [status, description],
      ) => {
        errorStatuses.add(Number(status));
        return [status, {
          description,
          ...(status === "401"
            ? { headers: headersOf({ "WWW-Authenticate": 'Bearer error="invalid_token"' }) }
            : {}),
          content: { [JSON_TYPE]: { schema: errorRef(Number(status)) } },
        }];
      });
      const parameters = Object.entries(r.headers ?? {}).map(([name, description]) => ({
        name,
        in: "header",
        required: false,
        description,
        schema: { type: "string" },
      }));
      paths[r.path] ??= {};
      paths[r.path][r.method] = {
        summary: r.summary,
        ...(r.access === "public" ? { security: [] } : {}),
        ...(r.access === "admin" ? { description: "Admins only." } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(r.body
          ? {
            requestBody: {
              required: true,
              content: { [JSON_TYPE]: { schema: jsonSchemaOf(r.body) } },
            },
          }
          : {}),
        responses: Object.fromEntries(
          [...answers, ...errors].sort(([a], [b]) => Number(a) - Number(b)),
        ),
      };
    }
    const schemas: Record<string, unknown> = { Error: jsonSchemaOf(errorBody()) };
    for (const status of [...errorStatuses].sort()) {
      const codes = ERROR_CODES.filter((code) => statusFor(code) === status);
      if (codes.length === 0) throw new Error(`No error code answers ${status}`);
      schemas[`Error${status}`] = jsonSchemaOf(errorBody(codes));
    }
    return {
      openapi: "3.1.0",
      info: {
        title: "irsa",
        version: "1",
        description:
          "AWS roles for platform workspaces through IRSA and role chaining. Every path answers 404 (components.responses.NotFound) when unknown, and 405 with `Allow` (components.responses.MethodNotAllowed) for a method it does not list.",
      },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
          apiKey: { type: "apiKey", in: "header", name: "X-Domino-Api-Key" },
        },
        schemas,
        responses: {
          NotFound: {
            description: "No such path",
            content: { [JSON_TYPE]: { schema: errorRef(404) } },
          },
          MethodNotAllowed: {
            description: "The path does not answer this method",
            headers: headersOf({ Allow: "The methods the path answers" }),
            content: { [JSON_TYPE]: { schema: errorRef(405) } },
          },
        },
      },
      security: [{ bearer: [] }, { apiKey: [] }],
      paths,
    };
  }
}

function headersOf(headers: Readonly<Record<string, string>>) {
  return Object.fromEntries(
    Object.entries(headers).map(([name, description]) => [
      name,
      { description, schema: { type: "string" } },
    ]),
  );
}

/**
 * Answers 405 with `Allow` when a described path is asked a method it does not describe, before
 * the body limit and any token check. It reads the description at each request, so routes may be
 * described after it is installed.
 */
export function refuseOtherMethods(api: ApiDescription) {
  return async function allowedMethod(c: Context<ServerEnv>, next: () => Promise<void>) {
    const allow = allowedMethods(api.routes, c.req.path);
    if (allow.length > 0 && !allow.includes(c.req.method)) {
      c.header("Allow", allow.join(", "));
      throw new AppError(
        "method_not_allowed",
        `Method ${c.req.method} is not allowed on ${c.req.path}: it answers ${allow.join(", ")}`,
      );
    }
    await next();
  };
}
