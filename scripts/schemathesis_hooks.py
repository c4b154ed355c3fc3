"""Schemathesis hooks for runs against `cargo lambda watch`.

The description (docs/openapi.yaml) is of a default deployment; two things it cannot say are
supplied here, and nothing else is changed:

- Where messages may go is the deployment's policy (EMAIL_ALLOWED_RECIPIENTS, TELEGRAM_ALLOWED_CHATS,
  SLACK_ALLOWED_HOSTS, DISCORD_ALLOWED_HOSTS): `before_load_schema` puts the running stack's
  lists (from the environment `scripts/stack.sh env` sets) into the target schemas.
- Two rules compare two fields, which JSON Schema cannot: an item's `to` is later than its
  `from` when both are set, and a wide target has as many labels as names. `before_call` makes
  each case generated as valid keep them (swapping the window's ends; padding or trimming the
  labels); cases generated as invalid are sent as generated.

One exclusion, and only one: a request body that is not UTF-8 (raw bytes, or a JSON body holding
lone surrogates, which goes on the wire as such bytes). `cargo lambda watch` answers such
a request with its own 500 before any function runs (it cannot put the bytes into the event),
while API Gateway base64-encodes it and the function answers 400; that path is tested in
functions/exports-api/tests/bad_input.rs (`a_body_that_is_not_utf8_is_a_400`). The stateful
phase does not consult the filter, so there such a body's lone surrogates become U+FFFD instead.
"""
import json
import time
import os
import re

import schemathesis


def _allowed(name, default=""):
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


def _any_case(text):
    """A pattern matching `text` in any ASCII case (the API compares hosts and domains so)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in text)


@schemathesis.hook
def before_load_schema(context, raw_schema):
    schemas = raw_schema["components"]["schemas"]
    emails = _allowed("EMAIL_ALLOWED_RECIPIENTS")
    domains = [_any_case(e.lstrip("@")) for e in emails if "@" not in e.lstrip("@")]
    addresses = [_any_case(e) for e in emails if "@" in e.lstrip("@")]
    email = []
    if domains:
        email.append(r"[!#-+\--:=?-~]{1,64}@(?:" + "|".join(domains) + ")")
    email += addresses
    # The caller's own address (the identity's `email`) is always allowed.
    identity = json.loads(os.environ.get("ST_IDENTITY", "{}"))
    if identity.get("email"):
        email.append(_any_case(identity["email"]))
    schemas["EmailTarget"]["pattern"] = "^(?:" + "|".join(email) + ")$"
    chats = _allowed("TELEGRAM_ALLOWED_CHATS") + _allowed("TELEGRAM_DEFAULT_CHAT")
    schemas["TelegramTarget"] = {"type": "string", "enum": chats} if chats else {"not": {}}
    for medium, variable, default in [
        ("Slack", "SLACK_ALLOWED_HOSTS", "hooks.slack.com"),
        ("Discord", "DISCORD_ALLOWED_HOSTS", "discord.com,discordapp.com"),
    ]:
        hosts = [_any_case(h) for h in _allowed(variable, default)]
        loopback = all(h in ("localhost", "127.0.0.1", "[::1]") for h in _allowed(variable, default))
        scheme = "https?" if loopback else "https"
        schemas[f"{medium}Target"]["pattern"] = (
            f"^{scheme}://(?:" + "|".join(hosts) + r")(?::[1-9][0-9]{0,3})?/[A-Za-z0-9/_-]*$"
        )


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
    meta = getattr(case, "meta", None)
    positive = meta is None or meta.generation.mode.is_positive
    if positive and case.operation.method.upper() == "POST" and case.operation.path in ("/exports", "/exports/preview"):
        _keep_cross_field_rules(case.body)
    if positive and case.operation.method.upper() == "POST" and case.operation.path == "/exports/{id}/runs":
        _keep_window_rules(case.body)


def _keep_window_rules(body):
    """A run's window ends after it starts, and not in the future."""
    if not isinstance(body, dict):
        return
    start, end = body.get("from"), body.get("to")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end))
    if not numbers:
        return
    now = time.time() - 1
    start, end = sorted((min(start, now), min(end, now)))
    # At most an hour (see `_keep_cross_field_rules`), and at least a second.
    start = max(start, end - 3600)
    if end - start < 1:
        start, end = (end - 1, end) if end >= 1 else (0, 1)
    body["from"], body["to"] = start, end


def _keep_cross_field_rules(body):
    """An item's window ends in order, a wide target's labels as many as its names; and a
    one-time export's items read the last hour: the local stack runs each such create's job
    before it answers the next request (one instance a function), and a window of decades of
    the local reader's points a minute apart would hold the fuzzer for hours."""
    items = body.get("items") if isinstance(body, dict) else None
    one_time = isinstance(body, dict) and body.get("type") == "oneTime"
    for item in items if isinstance(items, list) else []:
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(params, dict):
            continue
        if one_time:
            now = int(time.time())
            params["from"], params["to"] = now - 3600, now
            params.pop("period", None)
        elif isinstance(params.get("period"), str) and any(
            int(n) > 1000 for n in re.findall(r"\d+", params["period"])
        ):
            # A window of a million years has no representable start: refused (400) at the
            # item, a rule across the item and the calendar the description cannot state.
            params["period"] = "P1D"
        start, end = params.get("from"), params.get("to")
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) and v for v in (start, end)):
            if start > end:
                params["from"], params["to"] = end, start
            elif start == end:
                params["from"] = 0
        target = params.get("target")
        if isinstance(target, dict) and isinstance(target.get("value"), str) and isinstance(target.get("label"), str):
            names = target["value"].split(",")
            labels = target["label"].split(",")
            if len(names) > 1 and len(labels) != len(names):
                target["label"] = ",".join((labels + [""] * len(names))[: len(names)])
