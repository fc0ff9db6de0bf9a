/** The one error type of irsa: a closed set of codes, each with one HTTP status. */

/** Every error code the program can raise; the HTTP status of each is fixed by {@link statusFor}. */
export type ErrorCode =
  | "bad_request"
  | "invalid_subject"
  | "invalid_arn"
  | "invalid_policy"
  | "invalid_config_file"
  | "role_not_editable"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "unknown_organization"
  | "method_not_allowed"
  | "payload_too_large"
  | "policy_quota_exceeded"
  | "conflict"
  | "iam_access_denied"
  | "iam_role_not_found"
  | "upstream_error"
  | "unavailable"
  | "internal";

/** Every error code, listed for the API description; the `satisfies` keeps it equal to {@link ErrorCode}. */
export const ERROR_CODES = Object.keys(
  {
    bad_request: 0,
    invalid_subject: 0,
    invalid_arn: 0,
    invalid_policy: 0,
    invalid_config_file: 0,
    unauthorized: 0,
    forbidden: 0,
    not_found: 0,
    unknown_organization: 0,
    role_not_editable: 0,
    method_not_allowed: 0,
    payload_too_large: 0,
    policy_quota_exceeded: 0,
    conflict: 0,
    iam_access_denied: 0,
    iam_role_not_found: 0,
    upstream_error: 0,
    unavailable: 0,
    internal: 0,
  } satisfies Record<ErrorCode, 0>,
) as readonly ErrorCode[];

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
  switch (code) {
    case "bad_request":
    case "invalid_subject":
    case "invalid_arn":
    case "invalid_policy":
    case "invalid_config_file":
    // The request (or the stored mapping it reads) names a role outside the editable set.
    case "role_not_editable":
    case "unknown_organization":
      return 400;
    case "unauthorized":
      return 401;
    case "forbidden":
      return 403;
    case "not_found":
      return 404;
    case "method_not_allowed":
      return 405;
    case "conflict":
    case "policy_quota_exceeded":
      return 409;
    case "payload_too_large":
      return 413;
    case "iam_access_denied":
    case "iam_role_not_found":
    case "upstream_error":
      return 502;
    case "unavailable":
      return 503;
    case "internal":
      return 500;
  }
}
