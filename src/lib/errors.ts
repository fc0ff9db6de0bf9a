/** The one error type of irsa: a closed set of codes, each with one HTTP status. */

/**
 * Every error code the program can raise and the HTTP status that answers it: the one table the
 * type, the list in the API description and the error funnel all read.
 */
const STATUS_OF = {
  bad_request: 400,
  invalid_subject: 400,
  invalid_arn: 400,
  invalid_policy: 400,
  invalid_config_file: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  unknown_organization: 400,
  // The request (or the stored mapping it reads) names a role outside the editable set.
  role_not_editable: 400,
  method_not_allowed: 405,
  payload_too_large: 413,
  policy_quota_exceeded: 409,
  conflict: 409,
  iam_access_denied: 502,
  iam_role_not_found: 502,
  upstream_error: 502,
  unavailable: 503,
  internal: 500,
} as const;

/** Every error code the program can raise; the HTTP status of each is fixed by {@link statusFor}. */
export type ErrorCode = keyof typeof STATUS_OF;

/** Every error code, in the table's order, for the API description. */
export const ERROR_CODES: readonly ErrorCode[] = Object.keys(STATUS_OF).filter(
  (code): code is ErrorCode => code in STATUS_OF,
);

/** An expected failure: its message is safe to show to the caller, its details go to the log. */
export class AppError extends Error {
  override readonly name = "AppError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

/** The HTTP status that answers an error code. */
export function statusFor(code: ErrorCode): number {
  return STATUS_OF[code];
}
