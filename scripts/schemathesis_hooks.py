"""Schemathesis hooks for runs against `cargo lambda watch`.

One exclusion, and only one: a request body that is not UTF-8 (raw bytes, or a JSON body holding
lone surrogates, which goes on the wire as such bytes). `cargo lambda watch` answers such
a request with its own 500 before any function runs (it cannot put the bytes into the event),
while API Gateway base64-encodes it and the function answers 400; that path is tested in
functions/exports-api/tests/bad_input.rs (`a_body_that_is_not_utf8_is_a_400`). The stateful
phase does not consult the filter, so there such a body's lone surrogates become U+FFFD instead.
"""
import json

import schemathesis


@schemathesis.hook
def filter_case(context, case):
    body = case.body
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    elif isinstance(body, (dict, list, str)):
        # A JSON body holding lone surrogates goes on the wire as bytes that are not UTF-8.
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def _without_lone_surrogates(value):
    """`value` with each lone surrogate replaced by U+FFFD (other text unchanged)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


@schemathesis.hook
def before_call(context, case, **kwargs):
    # The stateful phase does not consult `filter_case`: there a JSON body holding lone
    # surrogates is sent with each one replaced by U+FFFD, which the wire can carry.
    if isinstance(case.body, (dict, list, str)):
        try:
            json.dumps(case.body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            case.body = _without_lone_surrogates(case.body)
