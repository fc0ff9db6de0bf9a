/**
 * AWS Signature Version 4 for one form POST, on Web Crypto: all the sidecar needs to call STS
 * AssumeRole. Loaded by dynamic import when the first credential is asked for, so the sidecar's
 * start pays nothing for it.
 */

/** Credentials that sign a request. */
export interface SigningCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** What to sign: a POST of `body` (form-encoded) to `url`. */
export interface SignInput {
  readonly url: string;
  readonly body: string;
  readonly region: string;
  readonly service: string;
  readonly credentials: SigningCredentials;
  /** Signing time, milliseconds since the epoch. */
  readonly now: number;
}

const encoder = new TextEncoder();

const hex = (bytes: ArrayBuffer) =>
  Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");

const sha256 = async (text: string) =>
  hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));

async function hmac(key: ArrayBuffer | Uint8Array, text: string): Promise<ArrayBuffer> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as BufferSource,
    {
      name: "HMAC",
      hash: "SHA-256",
    },
    false,
    ["sign"],
  );
  return await crypto.subtle.sign("HMAC", k, encoder.encode(text));
}

/** `20261204T160102Z` for a time in milliseconds. */
function amzDate(now: number): string {
  return new Date(now).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** URI-encodes a path as SigV4 wants it: every segment, `/` kept. */
function canonicalPath(pathname: string): string {
  return pathname.split("/").map((s) =>
    encodeURIComponent(decodeURIComponent(s)).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    )
  ).join("/") || "/";
}

/**
 * Returns the headers of the signed request: `Content-Type`, `X-Amz-Content-Sha256`, `X-Amz-Date`,
 * `X-Amz-Security-Token` with a session token, and `Authorization`. `Host` is signed but left
 * for fetch to send, as it does from the URL.
 */
export async function signFormPost(input: SignInput): Promise<Record<string, string>> {
  const url = new URL(input.url);
  const date = amzDate(input.now);
  const day = date.slice(0, 8);
  const payloadHash = await sha256(input.body);
  const headers: Record<string, string> = {
    "content-type": "application/x-www-form-urlencoded; charset=utf-8",
    host: url.host,
    "x-amz-content-sha256": payloadHash,
    "x-amz-date": date,
  };
  if (input.credentials.sessionToken) {
    headers["x-amz-security-token"] = input.credentials.sessionToken;
  }
  const names = Object.keys(headers).sort();
  const signedHeaders = names.join(";");
  const canonical = [
    "POST",
    canonicalPath(url.pathname),
    "",
    ...names.map((n) => `${n}:${headers[n].trim()}`),
    "",
    signedHeaders,
    payloadHash,
  ].join("\n");
  const scope = `${day}/${input.region}/${input.service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", date, scope, await sha256(canonical)].join("\n");
  let key = await hmac(encoder.encode(`AWS4${input.credentials.secretAccessKey}`), day);
  for (const part of [input.region, input.service, "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, toSign));
  const { host: _, ...sent } = headers;
  return {
    ...sent,
    authorization: `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, ` +
      `SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}
