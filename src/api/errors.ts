/** The wire form of every error answer: its code, a readable message and the request id. */

import * as v from "valibot";
import { ERROR_CODES, type ErrorCode } from "../lib/errors.ts";

/** The JSON body of every error answer, its code one of `codes` (all codes when absent). */
export const errorBody = (codes: readonly ErrorCode[] = ERROR_CODES) =>
  v.strictObject({
    code: v.picklist(codes),
    message: v.string(),
    request_id: v.string(),
  });

/** The error body of any status. */
export type ErrorBody = v.InferOutput<ReturnType<typeof errorBody>>;
