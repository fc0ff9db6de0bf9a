/**
 * Checks answers against the server's own `/openapi.json`: the path, method, status, media type,
 * described headers and body of each must be in the document, or the check throws.
 */

/** A JSON Schema as the document holds it. */
type Schema = Record<string, unknown>;
type Document = {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; responses: Record<string, ResponseDoc> };
};
type Operation = {
  responses: Record<string, ResponseDoc>;
  requestBody?: { content: Record<string, { schema: Schema }> };
};
type ResponseDoc = {
  description: string;
  headers?: Record<string, unknown>;
  content?: Record<string, { schema: Schema }>;
};

/** One answer, already read. */
export interface Answer {
  readonly method: string;
  /** The request's path; a query string is ignored. */
  readonly path: string;
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  /** The request's body, when it had one: a body the server took must be one the document allows. */
  readonly requestBody?: string;
}

/** Checks answers against one OpenAPI document. */
export class Conformance {
  /** How many answers were checked, by `METHOD path status`. */
  readonly checked = new Map<string, number>();
  constructor(readonly doc: Document) {
    if (typeof doc?.paths !== "object") {
      throw new Error(`Not an OpenAPI document: ${JSON.stringify(doc).slice(0, 300)}`);
    }
  }

  /** Reads a clone of the response and checks it; the response itself stays unread. */
  async checkResponse(
    method: string,
    path: string,
    res: Response,
    requestBody?: BodyInit | null,
  ): Promise<void> {
    const body = await res.clone().text();
    this.check({
      method,
      path,
      status: res.status,
      headers: res.headers,
      body,
      ...(typeof requestBody === "string" ? { requestBody } : {}),
    });
  }

  /** Throws naming the first way the answer differs from the document. */
  check(a: Answer): void {
    const method = a.method.toUpperCase();
    const path = a.path.split("?")[0];
    const where = `${method} ${path} ${a.status}`;
    const item = this.doc.paths[path];
    let response: ResponseDoc | undefined;
    if (!item) {
      if (a.status !== 404) throw new Error(`${where}: the path is not in the document`);
      response = this.doc.components.responses.NotFound;
    } else {
      const op = item[method === "HEAD" ? "get" : method.toLowerCase()];
      if (!op) {
        if (a.status !== 405) {
          throw new Error(`${where}: the method is not in the document, so it must answer 405`);
        }
        const allowed = Object.keys(item).map((m) => m.toUpperCase());
        if (allowed.includes("GET")) allowed.push("HEAD");
        const allow = a.headers.get("allow")?.split(",").map((m) => m.trim()).sort();
        if (JSON.stringify(allow) !== JSON.stringify(allowed.sort())) {
          throw new Error(`${where}: Allow is ${a.headers.get("allow")}, not ${allowed}`);
        }
        response = this.doc.components.responses.MethodNotAllowed;
      } else {
        const accepted = op.requestBody?.content["application/json"]?.schema;
        if (accepted && a.status < 300 && a.requestBody !== undefined) {
          const problems = validate(accepted, JSON.parse(a.requestBody), this.doc);
          if (problems.length > 0) {
            throw new Error(
              `${where}: the server took a body its document refuses:\n  ${
                problems.join("\n  ")
              }\nbody: ${a.requestBody.slice(0, 500)}`,
            );
          }
        }
        response = op.responses[String(a.status)];
        if (!response) {
          throw new Error(
            `${where}: status not described (described: ${Object.keys(op.responses)}); body ${
              a.body.slice(0, 300)
            }`,
          );
        }
      }
    }
    for (const name of Object.keys(response.headers ?? {})) {
      if (!a.headers.has(name)) throw new Error(`${where}: header ${name} is described but absent`);
    }
    this.checked.set(where, (this.checked.get(where) ?? 0) + 1);
    if (method === "HEAD") return;
    const content = response.content ?? {};
    const type = a.headers.get("content-type")?.split(";")[0].trim().toLowerCase();
    if (Object.keys(content).length === 0) {
      if (a.body !== "") throw new Error(`${where}: a body is sent but none is described`);
      return;
    }
    const media = type === undefined ? undefined : content[type];
    if (!media) {
      throw new Error(`${where}: media type ${type} not described (${Object.keys(content)})`);
    }
    let value: unknown = a.body;
    if (type === "application/json") {
      try {
        value = JSON.parse(a.body);
      } catch {
        throw new Error(`${where}: the body is not JSON: ${a.body.slice(0, 200)}`);
      }
    }
    const problems = validate(media.schema, value, this.doc);
    if (problems.length > 0) {
      throw new Error(
        `${where}: the ${type} body does not match its schema:\n  ${problems.join("\n  ")}\nbody: ${
          a.body.slice(0, 1000)
        }`,
      );
    }
  }
}

// Keywords that only annotate; everything else must be understood or validation refuses.
const ANNOTATIONS = new Set(["description", "title", "examples", "default", "$schema"]);

/** Every keyword {@link validate} knows, annotations included. */
export const KEYWORDS: ReadonlySet<string> = new Set([
  ...ANNOTATIONS,
  ...[
    "$ref",
    "type",
    "const",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "items",
    "required",
    "properties",
    "additionalProperties",
    "propertyNames",
    "anyOf",
    "not",
  ],
]);

const typeOf = (value: unknown): string =>
  value === null
    ? "null"
    : Array.isArray(value)
    ? "array"
    : typeof value === "number" && Number.isInteger(value)
    ? "integer"
    : typeof value;

/**
 * Validates a value against the JSON Schema subset the document uses; an unknown keyword throws,
 * so that no rule of the document is skipped. Returns the problems, each with its JSON path.
 */
export function validate(schema: Schema, value: unknown, doc: Document, at = "$"): string[] {
  const problems: string[] = [];
  const fail = (why: string) => problems.push(`${at}: ${why}`);
  for (const [keyword, rule] of Object.entries(schema)) {
    switch (keyword) {
      case "$ref": {
        const name = String(rule).replace(/^#\/components\/schemas\//, "");
        const target = doc.components.schemas[name];
        if (!target) throw new Error(`Unknown $ref ${rule}`);
        problems.push(...validate(target, value, doc, at));
        break;
      }
      case "type": {
        const types = Array.isArray(rule) ? rule : [rule];
        const actual = typeOf(value);
        if (!types.includes(actual) && !(actual === "integer" && types.includes("number"))) {
          fail(`expected ${types.join(" or ")}, got ${actual}`);
        }
        break;
      }
      case "const":
        if (JSON.stringify(value) !== JSON.stringify(rule)) {
          fail(`expected ${JSON.stringify(rule)}, got ${JSON.stringify(value)}`);
        }
        break;
      case "enum":
        if (!(rule as unknown[]).some((r) => JSON.stringify(r) === JSON.stringify(value))) {
          fail(`${JSON.stringify(value)} is not one of ${JSON.stringify(rule)}`);
        }
        break;
      case "pattern":
        if (typeof value === "string" && !new RegExp(rule as string, "u").test(value)) {
          fail(`${JSON.stringify(value.slice(0, 200))} does not match ${rule}`);
        }
        break;
      case "minLength":
      case "maxLength":
        if (typeof value === "string") {
          const n = [...value].length;
          if (keyword === "minLength" ? n < (rule as number) : n > (rule as number)) {
            fail(`length ${n} breaks ${keyword} ${rule}`);
          }
        }
        break;
      case "minimum":
      case "maximum":
        if (typeof value === "number") {
          if (keyword === "minimum" ? value < (rule as number) : value > (rule as number)) {
            fail(`${value} breaks ${keyword} ${rule}`);
          }
        }
        break;
      case "exclusiveMinimum":
      case "exclusiveMaximum":
        if (typeof value === "number") {
          const limit = rule as number;
          if (keyword === "exclusiveMinimum" ? value <= limit : value >= limit) {
            fail(`${value} breaks ${keyword} ${rule}`);
          }
        }
        break;
      case "minProperties":
      case "maxProperties":
        if (typeOf(value) === "object") {
          const n = Object.keys(value as object).length;
          if (keyword === "minProperties" ? n < (rule as number) : n > (rule as number)) {
            fail(`${n} properties break ${keyword} ${rule}`);
          }
        }
        break;
      case "minItems":
      case "maxItems":
        if (Array.isArray(value)) {
          const n = value.length;
          if (keyword === "minItems" ? n < (rule as number) : n > (rule as number)) {
            fail(`${n} items break ${keyword} ${rule}`);
          }
        }
        break;
      case "items":
        if (Array.isArray(value)) {
          value.forEach((item, i) =>
            problems.push(...validate(rule as Schema, item, doc, `${at}[${i}]`))
          );
        }
        break;
      case "required":
        if (typeOf(value) === "object") {
          for (const key of rule as string[]) {
            if (!Object.hasOwn(value as object, key)) fail(`missing ${JSON.stringify(key)}`);
          }
        }
        break;
      case "properties":
        if (typeOf(value) === "object") {
          for (const [key, sub] of Object.entries(rule as Record<string, Schema>)) {
            const v = (value as Record<string, unknown>)[key];
            if (Object.hasOwn(value as object, key)) {
              problems.push(...validate(sub, v, doc, `${at}.${key}`));
            }
          }
        }
        break;
      case "additionalProperties":
        if (typeOf(value) === "object") {
          const known = new Set(Object.keys((schema.properties ?? {}) as object));
          for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
            if (known.has(key)) continue;
            if (rule === false) fail(`unexpected property ${JSON.stringify(key)}`);
            else if (rule !== true) {
              problems.push(...validate(rule as Schema, v, doc, `${at}.${key}`));
            }
          }
        }
        break;
      case "propertyNames":
        if (typeOf(value) === "object") {
          for (const key of Object.keys(value as object)) {
            problems.push(...validate(rule as Schema, key, doc, `${at}{${key}}`));
          }
        }
        break;
      case "anyOf": {
        const each = (rule as Schema[]).map((s) => validate(s, value, doc, at));
        if (!each.some((p) => p.length === 0)) {
          fail(`matches none of ${each.length} choices:\n    ${each.flat().join("\n    ")}`);
        }
        break;
      }
      case "not":
        if (validate(rule as Schema, value, doc, at).length === 0) {
          fail(`matches what is excluded: ${JSON.stringify(rule)}`);
        }
        break;
      default:
        if (!ANNOTATIONS.has(keyword)) {
          throw new Error(`The validator does not know keyword ${keyword} (at ${at})`);
        }
    }
  }
  return problems;
}
