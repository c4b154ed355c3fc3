"""The deploy check: translates infra/template.yaml as `sam deploy` does (aws-sam-translator) into
plain CloudFormation, writes it to target/infra/template.json, and lints the translated
template with cfn-lint, whose rules (a dependency cycle among them, E3004) skip the
AWS::Serverless resources of the untranslated one. The assertions on the translated resources
are tests/tests/integration/deployable.rs, which reads that file.

Run by `make infra-check` (part of `make test`); offline: no AWS account is asked anything.
`--translate-only PATH` writes the translation to PATH, prints PATH and lints nothing (the
tests use it).
"""

import json
import os
import pathlib
import subprocess
import sys

from cfnlint.decode import cfn_yaml
from samtranslator.translator.transform import transform

# The translator wants a region to build ARNs with; nothing is asked of AWS.
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "infra" / "template.yaml"
OUT = ROOT / "target" / "infra" / "template.json"


class NoManagedPolicies:
    """The translator asks IAM for managed policies' ARNs only when a function names one by
    name; this template names none, so nothing is looked up (and nothing may be)."""

    def load(self):
        return {}


def translate() -> dict:
    """The template as `sam deploy` hands it to CloudFormation."""
    template = cfn_yaml.load(str(SOURCE))
    # As `sam deploy` packages first: each function's local code becomes an uploaded object.
    for name, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in properties:
            properties["CodeUri"] = f"s3://exporter-artifacts/{name}.zip"
    return transform(template, {}, NoManagedPolicies())


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--translate-only":
        out = pathlib.Path(sys.argv[2])
        out.write_text(json.dumps(translate(), default=str))
        print(out)
        return 0
    translated = translate()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(translated, indent=1, default=str))
    resources = translated.get("Resources", {})
    body = SOURCE.stat().st_size
    print(f"infra-check: {SOURCE.relative_to(ROOT)} ({body} bytes; CloudFormation takes 1 MB through S3, "
          f"as sam deploy uploads it) translates to {len(resources)} resources (of 500 allowed), "
          f"{OUT.relative_to(ROOT)}")
    # Errors fail the check; warnings are printed (a new cfn-lint release may add some).
    lint = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "cfn-lint"), "--non-zero-exit-code", "error", str(OUT)],
        check=False,
    )
    if lint.returncode != 0:
        print("infra-check: cfn-lint refuses the translated template", file=sys.stderr)
        return 1
    print("infra-check: cfn-lint passes the translated template")
    return 0


if __name__ == "__main__":
    sys.exit(main())
