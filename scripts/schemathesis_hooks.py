"""Schemathesis hooks for runs against `cargo lambda watch`.

One exclusion, and only one: a request body that is not UTF-8 (raw bytes, or a JSON body holding
lone surrogates, which goes on the wire as such bytes). `cargo lambda watch` answers such
a request with its own 500 before any function runs (it cannot put the bytes into the event),
while API Gateway base64-encodes it and the function answers 400; that path is tested in
functions/exports-api/tests/bad_input.rs (`a_body_that_is_not_utf8_is_a_400`).
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
