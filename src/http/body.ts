/** Reading a request's JSON body through its valibot schema. */

import type { Context } from "hono";
import * as v from "valibot";
import { AppError } from "../lib/errors.ts";

/** Reads and validates a JSON body; a problem answers 400 naming the field. */
export async function jsonBody<T extends v.GenericSchema>(
  c: Context,
  schema: T,
): Promise<v.InferOutput<T>> {
  const text = await c.req.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AppError(
      "bad_request",
      text.trim() === ""
        ? "Request body is empty: expected a JSON object"
        : "Request body is not valid JSON",
    );
  }
  const key = prototypeKeyIn(json);
  if (key !== undefined) {
    throw new AppError(
      "bad_request",
      `Invalid key ${JSON.stringify(key.name)} at "${key.path || "(body)"}": ` +
        `"__proto__", "constructor" and "prototype" are not accepted as keys anywhere in a body`,
    );
  }
  const result = v.safeParse(schema, json);
  if (!result.success) {
    const issue = result.issues[0];
    const field = v.getDotPath(issue);
    throw new AppError(
      "bad_request",
      field ? `Invalid field "${field}": ${issue.message}` : `Invalid body: ${issue.message}`,
    );
  }
  return result.output;
}

/**
 * Keys a schema's object parser would drop without a word (valibot skips them, to keep objects'
 * prototypes safe): refused at the door instead, so that no name sent is silently lost.
 */
const PROTOTYPE_KEYS = new Set(["__proto__", "constructor", "prototype"]);

/** The first such key in a parsed JSON value, with its dotted path. */
function prototypeKeyIn(json: unknown, path = ""): { name: string; path: string } | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  for (const [name, value] of Object.entries(json)) {
    if (PROTOTYPE_KEYS.has(name)) return { name, path };
    const inner = prototypeKeyIn(value, path === "" ? name : `${path}.${name}`);
    if (inner) return inner;
  }
  return undefined;
}
