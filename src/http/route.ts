/**
 * Routes declared once: path, method, access, body, answers and handler in one value. Mounting a
 * declaration registers its description, puts the guard its access names in front of it, validates
 * its body and hands the handler the parsed value, so the document, the auth and the validation
 * cannot drift apart.
 */

import type { Context, Env, Hono, MiddlewareHandler } from "hono";
import type * as v from "valibot";
import { jsonBody } from "./body.ts";
import type { Access, ApiDescription, RouteDoc } from "./openapi.ts";

/** What a route's handler answers. */
type Answer = Response | Promise<Response>;

/** Fields of a declaration besides its body and handler. */
type RouteFields<E extends Env> = Omit<RouteDoc, "body"> & {
  /** Middleware run after the guard and before the body is read (counting a request, say). */
  readonly use?: readonly MiddlewareHandler<E>[];
};

/** A declared route, its body's type erased so that routes of one app can sit in one list. */
export interface Route<E extends Env> extends RouteDoc {
  readonly use?: readonly MiddlewareHandler<E>[];
  readonly handle: (c: Context<E>, body: unknown) => Answer;
}

/** Declares a route with a JSON body: the handler gets the body as its schema parsed it. */
export function route<E extends Env, B extends v.GenericSchema>(
  r: RouteFields<E> & { readonly body: B; handle(c: Context<E>, body: v.InferOutput<B>): Answer },
): Route<E>;
/** Declares a route without a body. */
export function route<E extends Env>(
  r: RouteFields<E> & { readonly body?: undefined; handle(c: Context<E>): Answer },
): Route<E>;
export function route<E extends Env>(r: Route<E>): Route<E> {
  return r;
}

/** The guard in front of each access but `public`: it authenticates, and for `admin` authorizes. */
export type Guards<E extends Env> = Readonly<
  Record<Exclude<Access, "public">, MiddlewareHandler<E>>
>;

/** Registers each route's description and mounts it behind the guard its access names. */
export function mountRoutes<E extends Env>(
  app: Hono<E>,
  routes: readonly Route<E>[],
  options: { readonly api: ApiDescription; readonly guards: Guards<E> },
): void {
  for (const r of routes) {
    options.api.add(r);
    const guard = r.access === "public" ? [] : [options.guards[r.access]];
    const body = r.body;
    app.on(
      r.method.toUpperCase(),
      [r.path],
      ...guard,
      ...(r.use ?? []),
      async function handle(c: Context<E>) {
        return await r.handle(c, body ? await jsonBody(c, body) : undefined);
      },
    );
  }
}
