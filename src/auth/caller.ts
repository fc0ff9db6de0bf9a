/** Who is calling: the identity a verified user token yields, and the verifier interfaces. */

import type { ServiceAccount } from "../core/subject.ts";

/** The authenticated user behind a request. */
export interface Caller {
  readonly username: string;
  /** The platform's canonical user id, when the verifier knows it (the `domino` verifier does). */
  readonly userId?: string;
  /** The user's platform organizations, which select their role mappings. */
  readonly organizations: readonly string[];
  readonly isAdmin: boolean;
}

/** Turns a bearer token into a {@link Caller}, or throws AppError `unauthorized` with the reason. */
export interface UserVerifier {
  verify(token: string): Promise<Caller>;
  /**
   * Turns a platform API key (`X-Domino-Api-Key`) into a {@link Caller}; absent when this server
   * has no platform API to ask.
   */
  verifyApiKey?(key: string): Promise<Caller>;
  /** True once the verifier can verify (signing keys fetched); for `/readyz`. */
  ready(): Promise<boolean>;
}

/** What a verified projected service-account token proves: the pod's service account. */
export interface Workload {
  readonly serviceAccount: ServiceAccount;
  readonly podName?: string;
}

/** Verifies a pod's projected service-account token, or throws AppError `unauthorized`. */
export interface WorkloadVerifier {
  verify(token: string): Promise<Workload>;
}
