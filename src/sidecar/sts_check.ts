/** The propagation check: AssumeRoleWithWebIdentity, an unsigned form POST, made with fetch (no AWS SDK here). */

/** The outcome of one attempt. */
export type AssumeResult = { ok: true } | { ok: false; code: string; message: string };

/** Tries to assume `roleArn` with the pod's token; the credentials are thrown away. */
export async function tryAssumeRoleWithWebIdentity(
  stsEndpoint: string,
  roleArn: string,
  webIdentityToken: string,
  sessionName: string,
  timeoutMs: number,
  doFetch: typeof fetch = fetch,
): Promise<AssumeResult> {
  const body = new URLSearchParams({
    Action: "AssumeRoleWithWebIdentity",
    Version: "2011-06-15",
    RoleArn: roleArn,
    RoleSessionName: sessionName,
    WebIdentityToken: webIdentityToken,
    DurationSeconds: "900",
  });
  try {
    const res = await doFetch(stsEndpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.ok) return { ok: true };
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? `HTTP ${res.status}`;
    const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? "";
    return { ok: false, code, message };
  } catch (e) {
    return { ok: false, code: "NetworkError", message: (e as Error).message };
  }
}
