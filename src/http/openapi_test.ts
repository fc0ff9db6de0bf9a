import assert from "node:assert/strict";
import * as v from "valibot";
import { ApiDescription, jsonSchemaOf } from "./openapi.ts";

const even = v.pipe(v.string(), v.check((s) => s.length % 2 === 0, "odd"));

Deno.test("a v.check the document cannot show stops the conversion; with v.metadata it shows", () => {
  assert.throws(
    () => jsonSchemaOf(v.object({ a: even })),
    /schema\.a: a v\.check has no v\.metadata/,
  );
  assert.deepEqual(
    jsonSchemaOf(v.object({ a: v.pipe(even, v.metadata({ pattern: "^(..)*$" })) })),
    {
      type: "object",
      properties: { a: { type: "string", pattern: "^(..)*$" } },
      required: ["a"],
    },
  );
  // A regex with flags has no JSON-schema form either.
  assert.throws(() => jsonSchemaOf(v.pipe(v.string(), v.regex(/^a$/i))), /flags/);
});

Deno.test("the document refuses an error status no code answers, and a status both answer and error", () => {
  const route = { method: "get", path: "/x", summary: "X.", access: "public" } as const;
  const teapot = new ApiDescription();
  teapot.add({ ...route, responses: { 200: { description: "ok" } }, errors: { 418: "Teapot" } });
  assert.throws(() => teapot.document(), /No error code answers 418/);
  const both = new ApiDescription();
  both.add({ ...route, responses: { 409: { description: "ok" } }, errors: { 409: "Conflict" } });
  assert.throws(() => both.document(), /status 409 is both an answer and an error/);
});

Deno.test("errors are implied by access and body, each with its status's codes only", () => {
  const api = new ApiDescription();
  api.add({
    method: "post",
    path: "/x",
    summary: "X.",
    access: "admin",
    body: v.object({}),
    responses: { 200: { description: "ok", json: v.strictObject({}) } },
  });
  const doc = api.document() as {
    paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    components: { schemas: Record<string, { properties: { code: { enum: string[] } } }> };
  };
  assert.deepEqual(Object.keys(doc.paths["/x"].post.responses), [
    "200",
    "400",
    "401",
    "403",
    "413",
    "500",
    "503",
  ]);
  assert.deepEqual(doc.components.schemas.Error401.properties.code.enum, ["unauthorized"]);
  assert.deepEqual(doc.components.schemas.Error405.properties.code.enum, ["method_not_allowed"]);
  assert.deepEqual(doc.components.schemas.Error413.properties.code.enum, ["payload_too_large"]);
});
