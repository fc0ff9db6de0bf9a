/**
 * Real AWS clients in a run container's environment (the Mutation's variables, the config file and
 * helper the real sidecar wrote, its credential endpoint) read an object of the assets account's
 * bucket; every S3 request's access key is traced back through STS to the asset role it belongs
 * to. The clients are installed by scripts/setup_clients.sh (.ci/run calls it); without them the
 * tests are skipped outside CI and fail in CI.
 */
import assert from "node:assert/strict";
import { EXAMPLE } from "./fixtures/moto.ts";
import { OBJECT_BODY, OBJECT_KEY, startCredentialWorld } from "./credential_world.ts";

const LIST = "acme-list-bucket-role";
const READ = "acme-read-bucket-role";
const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const SCRIPT = `${ROOT}tests/clients/read_s3.py`;
const JAVA_SOURCE = `${ROOT}tests/clients/jvm/ReadS3.java`;
const PYTHON = `${ROOT}.venv/clients/bin/python`;
const PYTHON_NO_BOTO3 = `${ROOT}.venv/clients-noboto/bin/python`;
/** The AWS SDK for Java v2's classpath, resolved into ~/.m2 by scripts/setup_clients.sh. */
const JVM_CLASSPATH = `${ROOT}.venv/jvm-classpath.txt`;
const JAVA = "java";

const missing = [PYTHON, PYTHON_NO_BOTO3, JVM_CLASSPATH].filter((p) => {
  try {
    Deno.statSync(p);
    return false;
  } catch {
    return true;
  }
});
const skip = missing.length > 0 && Deno.env.get("CI") !== "true";
if (skip) {
  console.error(
    `tests/clients_test.ts: skipping: ${missing.join(", ")} missing (scripts/setup_clients.sh)`,
  );
}

/** One client run: the tool, its interpreter, the profiles it reads with, what each must be. */
interface Case {
  readonly tool: string;
  /** The interpreter: a venv's python, or JAVA. */
  readonly python: string;
  /** Profile names, or [undefined] for the tool's default identity. */
  readonly profiles: readonly (string | undefined)[];
  /** The asset role each read must act as. */
  readonly expect: readonly string[];
  readonly env?: Record<string, string>;
}

Deno.test({
  name:
    "boto3, pyarrow, DuckDB, polars (with and without boto3) and the Java SDK v2 read the bucket as the asset role, by profile and by default",
  ignore: skip,
  async fn() {
    // Two roles, the second named as the pod's default (the chart's value).
    const w = await startCredentialWorld({
      roles: [LIST, READ],
      sidecarArgs: ["--default-profile", READ],
    });
    try {
      const empty = `${w.dir}/empty-config`;
      await Deno.writeTextFile(empty, "");
      const cases: Case[] = [
        { tool: "boto3", python: PYTHON, profiles: [LIST, READ], expect: [LIST, READ] },
        // No profile: [default], the copy of the pod's default profile.
        { tool: "boto3", python: PYTHON, profiles: [undefined], expect: [READ] },
        // The container provider itself, when no profile and no web identity stand before it.
        {
          tool: "boto3",
          python: PYTHON,
          profiles: [undefined],
          expect: [READ],
          env: { AWS_CONFIG_FILE: empty, AWS_WEB_IDENTITY_TOKEN_FILE: "" },
        },
        // A second role through the container provider: its URI names the profile.
        {
          tool: "boto3",
          python: PYTHON,
          profiles: [undefined],
          expect: [LIST],
          env: {
            AWS_CONFIG_FILE: empty,
            AWS_WEB_IDENTITY_TOKEN_FILE: "",
            AWS_CONTAINER_CREDENTIALS_FULL_URI: `${w.sidecar.url}/credentials/${LIST}`,
          },
        },
        {
          tool: "polars",
          python: PYTHON_NO_BOTO3,
          profiles: [undefined],
          expect: [LIST],
          env: { AWS_CONTAINER_CREDENTIALS_FULL_URI: `${w.sidecar.url}/credentials/${LIST}` },
        },
        // By name: one filesystem per role in one process, each made by the documented helper
        // while the container provider's URI names its profile, all made before the first read;
        // the first is read again after the second.
        {
          tool: "pyarrow",
          python: PYTHON,
          profiles: [LIST, READ, LIST],
          expect: [LIST, READ, LIST],
        },
        { tool: "pyarrow", python: PYTHON, profiles: [undefined], expect: [READ] },
        // The gap the helper closes, kept as a canary: told AWS_PROFILE, pyarrow's C++ SDK sees
        // role_arn before credential_process, cannot assume it, and falls through to the pod's
        // default. Should a pyarrow upgrade make this LIST, docs/workspace-users.md must change.
        { tool: "pyarrow-aws-profile", python: PYTHON, profiles: [LIST], expect: [READ] },
        { tool: "duckdb", python: PYTHON, profiles: [LIST, READ], expect: [LIST, READ] },
        { tool: "polars", python: PYTHON, profiles: [LIST, READ], expect: [LIST, READ] },
        { tool: "polars", python: PYTHON, profiles: [undefined], expect: [READ] },
        // Rust's object_store: the container provider, then a profile's credential_process.
        { tool: "polars", python: PYTHON_NO_BOTO3, profiles: [undefined], expect: [READ] },
        { tool: "polars-process", python: PYTHON_NO_BOTO3, profiles: [LIST], expect: [LIST] },
        // The AWS SDK for Java v2: ProfileCredentialsProvider by name, the default chain without.
        { tool: "java-sdk-v2", python: JAVA, profiles: [LIST, READ], expect: [LIST, READ] },
        { tool: "java-sdk-v2", python: JAVA, profiles: [undefined], expect: [READ] },
      ];
      const classpath = (await Deno.readTextFile(JVM_CLASSPATH)).trim();
      for (const c of cases) {
        const where = c.python === JAVA
          ? "JVM"
          : c.python === PYTHON
          ? "boto3 installed"
          : "no boto3";
        const label = `${c.tool} (${where}) ` +
          `${c.profiles.map((p) => p ?? "default").join(",")}${
            c.env ? " " + JSON.stringify(c.env) : ""
          }`;
        // A mark no case uses: requests of a client that failed to mark count for none.
        await (await fetch(`${w.aws}/__mark__/(none)`)).body?.cancel();
        const from = w.s3Requests.length;
        const env = w.runEnv(c.env ?? {});
        for (const [k, v] of Object.entries(env)) if (v === "") delete env[k];
        const profiles = c.profiles[0] === undefined ? "-" : c.profiles.join(",");
        const out = await new Deno.Command(c.python, {
          args: c.python === JAVA
            ? ["-cp", classpath, JAVA_SOURCE, profiles, EXAMPLE.bucket, OBJECT_KEY]
            : [SCRIPT, c.tool, profiles, EXAMPLE.bucket, OBJECT_KEY],
          env,
          clearEnv: true,
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(120_000),
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        // A client killed by the timeout (one that hangs at exit, say) shows its signal.
        assert.equal(out.code, 0, `${label}: exit ${out.code} ${out.signal ?? ""}: ${stderr}`);
        const reads = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) =>
          JSON.parse(l)
        );
        assert.equal(reads.length, c.profiles.length, label);
        for (const [i, read] of reads.entries()) {
          assert.equal(read.body, OBJECT_BODY, label);
          const mark = c.profiles[i] ?? "-";
          const requests = w.s3Requests.slice(from).filter((r) => r.mark === mark);
          assert.ok(requests.length > 0, `${label}: no S3 request after mark ${mark}`);
          for (const r of requests) {
            assert.ok(r.accessKeyId, `${label}: an unsigned ${r.method} ${r.path}`);
            const who = await w.identityOfKey(r.accessKeyId!);
            assert.equal(who.account, EXAMPLE.assetsAccount, label);
            assert.equal(
              who.arn,
              `arn:aws:sts::222222222222:assumed-role/${c.expect[i]}/jdoe`,
              label,
            );
          }
        }
        console.log(`ok: ${label}`);
      }
    } finally {
      await w.close();
    }
  },
});
