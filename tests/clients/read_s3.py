"""Reads one object from S3 with one real client, as a notebook would, once per profile named.

usage: read_s3.py TOOL PROFILES BUCKET KEY
  TOOL      boto3 | pyarrow | pyarrow-aws-profile | duckdb | polars | polars-process
  PROFILES  comma-separated profile names, or "-" for the tool's default identity

The endpoint is AWS_ENDPOINT_URL_S3 (the test's recording proxy in front of moto). Before each read
it GETs <endpoint>/__mark__/<profile>, so the test can tell which read used which access key. One
JSON line per read on standard output: {"profile": ..., "body": ...}.
"""

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request

tool, profiles, bucket, key = sys.argv[1:5]
endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
region = os.environ.get("AWS_REGION", "us-east-1")
host = endpoint.split("://", 1)[1]


def mark(profile):
    urllib.request.urlopen(f"{endpoint}/__mark__/{profile}").read()


def read_boto3(profile):
    import boto3
    from botocore.config import Config

    session = boto3.Session(profile_name=profile) if profile else boto3.Session()
    s3 = session.client("s3", config=Config(s3={"addressing_style": "path"}))
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def irsa_s3(profile, **options):
    """A pyarrow S3FileSystem that acts as an irsa profile: docs/workspace-users.md's helper, as is."""
    import pyarrow.fs

    uri = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
    saved = {k: os.environ.get(k) for k in (uri, "AWS_WEB_IDENTITY_TOKEN_FILE")}
    base = saved[uri].rsplit("/credentials", 1)[0]
    os.environ[uri] = base + "/credentials/" + urllib.parse.quote(profile, safe="")
    os.environ.pop("AWS_WEB_IDENTITY_TOKEN_FILE", None)
    try:
        return pyarrow.fs.S3FileSystem(**options)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


PYARROW_OPTIONS = {"region": region, "endpoint_override": host, "scheme": "http"}
# By name, every role's filesystem is made before the first read and kept to the end of the
# process: each keeps the role it was made for, whatever the others and the environment say.
PYARROW_FILESYSTEMS = (
    {p: irsa_s3(p, **PYARROW_OPTIONS) for p in profiles.split(",")}
    if tool == "pyarrow" and profiles != "-"
    else {}
)


def read_pyarrow(profile):
    import pyarrow.fs

    # No profile: the container provider (the pod's default profile).
    fs = PYARROW_FILESYSTEMS[profile] if profile else pyarrow.fs.S3FileSystem(**PYARROW_OPTIONS)
    with fs.open_input_stream(f"{bucket}/{key}") as f:
        return f.read().decode()


def read_pyarrow_aws_profile(profile):
    """pyarrow told a profile by AWS_PROFILE, as boto3 would be: its C++ SDK takes the default."""
    import pyarrow.fs

    os.environ["AWS_PROFILE"] = profile
    fs = pyarrow.fs.S3FileSystem(**PYARROW_OPTIONS)
    with fs.open_input_stream(f"{bucket}/{key}") as f:
        return f.read().decode()


def read_duckdb(profile):
    import glob
    import duckdb

    extensions = glob.glob(
        os.path.join(sys.prefix, "lib/python3*/site-packages/duckdb_ext/extensions")
    )[0]
    con = duckdb.connect(config={"autoinstall_known_extensions": False})
    con.execute(f"SET extension_directory = '{extensions}'")
    con.execute("LOAD httpfs")
    con.execute("LOAD aws")
    chain = f", PROFILE '{profile}'" if profile else ""
    con.execute(
        "CREATE SECRET irsa (TYPE s3, PROVIDER credential_chain, CHAIN "
        + ("'process'" if profile else "'container'")
        + chain
        + f", REGION '{region}', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)"
    )
    rows = con.execute(f"SELECT * FROM read_csv('s3://{bucket}/{key}')").fetchall()
    head = [d[0] for d in con.description]
    return "\n".join([",".join(head)] + [",".join(map(str, r)) for r in rows]) + "\n"


def to_csv(frame):
    return frame.write_csv()


def read_polars(profile):
    import polars as pl

    # Against real S3, storage_options={"aws_profile": profile} is the same; polars refuses it
    # next to aws_allow_http, which only this test's plain-HTTP endpoint needs.
    options = {"aws_endpoint_url": endpoint, "aws_allow_http": "true", "aws_region": region}
    provider = pl.CredentialProviderAWS(profile_name=profile) if profile else "auto"
    return to_csv(
        pl.read_csv(f"s3://{bucket}/{key}", storage_options=options, credential_provider=provider)
    )


def read_polars_process(profile):
    """polars without boto3, a profile by name: its credential_process, as a credential provider."""
    import polars as pl

    def provider():
        import configparser

        config = configparser.ConfigParser()
        config.read(os.environ["AWS_CONFIG_FILE"])
        line = config[f"profile {profile}"]["credential_process"]
        out = subprocess.run(line.split(), capture_output=True, text=True, check=True).stdout
        c = json.loads(out)
        from datetime import datetime

        expiry = int(datetime.fromisoformat(c["Expiration"].replace("Z", "+00:00")).timestamp())
        return (
            {
                "aws_access_key_id": c["AccessKeyId"],
                "aws_secret_access_key": c["SecretAccessKey"],
                "aws_session_token": c["SessionToken"],
            },
            expiry,
        )

    options = {"aws_endpoint_url": endpoint, "aws_allow_http": "true", "aws_region": region}
    return to_csv(
        pl.read_csv(f"s3://{bucket}/{key}", storage_options=options, credential_provider=provider)
    )


READERS = {
    "boto3": read_boto3,
    "pyarrow": read_pyarrow,
    "pyarrow-aws-profile": read_pyarrow_aws_profile,
    "duckdb": read_duckdb,
    "polars": read_polars,
    "polars-process": read_polars_process,
}

for profile in [None] if profiles == "-" else profiles.split(","):
    mark(profile or "-")
    print(json.dumps({"profile": profile, "body": READERS[tool](profile)}), flush=True)
