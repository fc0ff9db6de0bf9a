/**
 * The files the credential endpoint leaves in the shared config volume: the authorization token
 * (random, new at every start) and the `credential_process` helper, a shell script that asks the
 * sidecar with python3 or curl, whichever the workspace's image has.
 */

/** 32 random bytes, base64url: the authorization token of the credential endpoint. */
export function newAuthToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

/** True when `given` equals `expected`, in time that does not depend on where they differ. */
export function sameToken(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return diff === 0;
}

/** Single-quotes a value for sh. */
const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

// Python 3's standard library only; no single quote inside (it sits in a sh single-quoted string).
const PYTHON = `
import json, sys, urllib.error, urllib.parse, urllib.request
base, token_file, profile = sys.argv[1:4]
try:
    with open(token_file) as f:
        token = f.read().strip()
except OSError as e:
    sys.exit("irsa credential_process: cannot read the sidecar's token file: %s" % e)
url = base + urllib.parse.quote(profile, safe="") + "?format=process"
request = urllib.request.Request(url, headers={"Authorization": token})
try:
    with urllib.request.urlopen(request, timeout=30) as answer:
        sys.stdout.write(answer.read().decode())
except urllib.error.HTTPError as e:
    try:
        message = json.loads(e.read().decode()).get("message", "")
    except ValueError:
        message = ""
    sys.exit("irsa credential_process: profile %s: HTTP %d: %s" % (profile, e.code, message))
except (urllib.error.URLError, OSError) as e:
    sys.exit("irsa credential_process: cannot reach the irsa sidecar at %s: %s" % (base, e))
`;

/** The helper script: `sh <it> <profile>` prints the profile's credentials as credential_process wants them. */
export function helperScript(credentialsUrl: string, tokenFile: string): string {
  const base = credentialsUrl.replace(/\/?$/, "/");
  return [
    "#!/bin/sh",
    "# irsa: prints an AWS profile's credentials for credential_process, asked of the irsa sidecar.",
    "# Written by the sidecar at every start; edits are lost.",
    `base=${shQuote(base)}`,
    `token_file=${shQuote(tokenFile)}`,
    'if [ "$#" -ne 1 ]; then echo "usage: sh $0 PROFILE" >&2; exit 2; fi',
    "if command -v python3 >/dev/null 2>&1; then",
    `  exec python3 -c ${shQuote(PYTHON)} "$base" "$token_file" "$1"`,
    "fi",
    "if command -v curl >/dev/null 2>&1; then",
    '  exec curl -sS --fail-with-body -H "Authorization: $(cat "$token_file")" "$base$1?format=process"',
    "fi",
    'echo "irsa credential_process: this container has neither python3 nor curl; one of them is' +
    ' needed to fetch profile $1 from the irsa sidecar ($base)" >&2',
    "exit 127",
    "",
  ].join("\n");
}

/** Writes `text` to `path` through a temporary file and a rename, with `mode`. */
export async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : ".";
  await Deno.mkdir(dir, { recursive: true });
  const temp = `${dir}/.${path.slice(slash + 1)}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(temp, text, { mode });
    await Deno.chmod(temp, mode); // The umask narrows the mode given at creation.
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw e;
  }
}
