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
