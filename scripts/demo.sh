#!/usr/bin/env bash
# The local demo: brings the stack up (moto, the local reader, cargo lambda watch), creates the
# seed page's example export over HTTP (as API Gateway would deliver it, with the caller's claims
# in the local identity header and the user's own platform token, which the API forwards to the
# reader to check that the user may read the channel) and prints what it stored and armed; then runs the same example
# as a one-time export, waits for its job, downloads the file through the API and prints its
# first lines, and the email and chat posts its notifications sent; then the same items as a PDF
# report, its first page rendered; and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-tools.sh pdf
trap 'scripts/stack.sh down' EXIT
scripts/stack.sh up
set -a; eval "$(scripts/stack.sh env)"; set +a

API=$WATCH_ENDPOINT/lambda-url/exports-api
STATE_DIR=.stack
SCOPE='"scope":"exporter:exports:create exporter:exports:list exporter:exports:get exporter:exports:download exporter:exports:delete"'
IDENTITY="{\"sub\":\"demo-user\",\"email\":\"demo@example.com\",$SCOPE}"
TENANT_IDENTITY="{\"sub\":\"tenant-user\",\"email\":\"tenant@example.com\",$SCOPE}"
py() { .venv/bin/python3 "$@"; }
# Creates an export from the body given as curl's --data-binary argument; prints its id.
create_export() {
  curl -sf -X POST "$API/exports" -H "x-local-identity: $IDENTITY" -H "authorization: Bearer $LOCAL_USER_TOKEN" \
    -H 'content-type: application/json' --data-binary "$1" |
    py -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
# Waits up to two minutes for export $1's job to end; sets $state (its status JSON) and $status.
wait_export() {
  for _ in $(seq 1 120); do
    state=$(curl -sf "$API/exports/$1/status" -H "x-local-identity: $IDENTITY" -H "authorization: Bearer $LOCAL_USER_TOKEN")
    status=$(printf '%s' "$state" | py -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    [[ $status == done || $status == failed ]] && break
    sleep 1
  done
}

# The seed's body in the reader's dialect: a Magistrala item names its domain and writes its
# subtopic with `/`.
SEED=$STATE_DIR/seed-body.json
py - "$READER_DIALECT" "$LOCAL_DOMAIN" >"$SEED" <<'PY'
import json, sys
body = json.load(open("tests/data/seed-body.json"))
if sys.argv[1] in ("magistrala", "supermq"):
    for item in body["items"]:
        item["params"]["domainId"] = sys.argv[2]
        item["params"]["subtopic"] = item["params"]["subtopic"].replace(".", "/")
print(json.dumps(body))
PY
echo "reader dialect: $READER_DIALECT (channel access: ${CHANNEL_ACCESS:-reader})"

echo
echo "== POST /exports with the seed page's example body"
id=$(create_export @"$SEED")
echo "created export $id"

echo
echo "== The same body from a tenant who may not read the channel: refused before anything is stored"
curl -s -X POST "$API/exports" -H "x-local-identity: $TENANT_IDENTITY" -H "authorization: Bearer $LOCAL_TENANT_TOKEN" \
  -H 'content-type: application/json' --data-binary @"$SEED" -w '\n  HTTP %{http_code}\n'

echo
echo "== GET /exports/$id"
curl -sf "$API/exports/$id" -H "x-local-identity: $IDENTITY" -H "authorization: Bearer $LOCAL_USER_TOKEN" | py -m json.tool

echo
echo "== The stored item in DynamoDB (table $TABLE_NAME)"
py - "$id" <<'PY'
import json, sys, boto3
item = boto3.client("dynamodb").get_item(
    TableName="exports", Key={"pk": {"S": f"EXPORT#{sys.argv[1]}"}, "sk": {"S": "EXPORT"}})["Item"]
for name, value in sorted(item.items()):
    text = next(iter(value.values()))
    print(f"  {name:10} {text if name not in ('request', 'record') else json.dumps(json.loads(text))[:100] + '...'}")
PY

echo
echo "== The armed schedule in EventBridge Scheduler (group $SCHEDULE_GROUP)"
py - "$id" <<'PY'
import sys, boto3
s = boto3.client("scheduler").get_schedule(Name=f"export-{sys.argv[1]}", GroupName="exports")
print(f"  expression  {s['ScheduleExpression']} ({s['ScheduleExpressionTimezone']})")
print(f"  target      {s['Target']['Arn']}")
print(f"  input       {s['Target']['Input']}")
print(f"  window      {s['FlexibleTimeWindow']['Mode']}")
PY

echo
echo "== GET /exports/$id/status"
curl -sf "$API/exports/$id/status" -H "x-local-identity: $IDENTITY" -H "authorization: Bearer $LOCAL_USER_TOKEN" | py -m json.tool
echo
echo "== The seed's example as a one-time export (type oneTime, no periodicity; time, value and"
echo "   count columns added so the file shows the data): the last 1.5 years, 15-minute averages;"
echo "   with a second item (hourly temperature maxima): the items run in parallel, and a run past"
echo "   the stack's budget (RUN_BUDGET_SECONDS=1) goes on in a fresh invocation"
one_time=$(py -c '
import json
body = json.load(open(".stack/seed-body.json"))
body["type"] = "oneTime"
del body["periodicity"]
body["format"]["timezone"] = {"name": "Europe/Rome"}
chat = "http://127.0.0.1:9200"
body["notification"]["messages"] += [
    {"policy": "onSuccess", "medium": "slack", "title": "Export {{status}}",
     "text": "{{rows}} rows in {{files}}", "target": chat + "/slack/T000/B000/demo"},
    {"policy": "onSuccess", "medium": "discord", "title": "Export {{status}}",
     "text": "{{rows}} rows: {{downloadUrl}}", "target": chat + "/discord/api/webhooks/1/demo"},
    {"policy": "onSuccess", "medium": "telegram", "title": "Export {{status}}",
     "text": "{{rows}} rows, link valid until {{expiresAt}}", "target": "-1001234567890"},
    {"policy": "onFailure", "medium": "slack", "title": "Export failed", "text": "{{error}}",
     "target": chat + "/slack/T000/B000/demo"}]
body["format"]["columns"] = [{"id": "time", "label": "time"}, {"id": "value", "label": "share on"},
                             {"id": "count", "label": "points"}] + body["format"]["columns"]
second = json.loads(json.dumps(body["items"][0]))
second["params"]["target"] = {"value": "urn:cpt:smartdevice:nid:D0CF5EFFFE26FDAB1:temperature", "label": "temperature"}
second["params"]["decimation"] = {"ds": "1h", "dsf": "max"}
second["filename"] = "temperature"
body["items"].append(second)
print(json.dumps(body))')
id=$(create_export "$one_time")
echo "created export $id; waiting for its job"
wait_export "$id"
printf '%s' "$state" | py -m json.tool

echo
echo "== GET /exports/$id/download (302 to a presigned S3 URL), first lines of the file"
location=$(curl -s -o /dev/null -w '%{redirect_url}' "$API/exports/$id/download" -H "x-local-identity: $IDENTITY" -H "authorization: Bearer $LOCAL_USER_TOKEN")
echo "redirected to ${location%%\?*}?X-Amz-..."
curl -sf "$location" -o "$STATE_DIR/export.zip"
py - "$STATE_DIR/export.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for entry in archive.infolist():
        lines = archive.read(entry).decode().splitlines()
        print(f"  {entry.filename}: {len(lines) - 1} rows")
        for line in lines[:6]:
            print(f"    {line}")
PY

echo
echo "== The email the export sent (moto's /moto-api/data.json), headers and text part"
py - <<'PY'
import email, json, urllib.request
data = json.load(urllib.request.urlopen("http://127.0.0.1:5123/moto-api/data.json"))
for raw in data["ses"]["RawMessage"]:
    message = email.message_from_string(raw["raw_data"])
    print(f"  From: {message['From']}\n  To: {message['To']}\n  Subject: {message['Subject']}")
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            print("  " + part.get_payload(decode=True).decode().replace("\n", "\n  "))
        elif part.get_content_type() == "image/png":
            png = part.get_payload(decode=True)
            width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
            print(f"  [inline chart {part['Content-ID']}, a {width}x{height} PNG of {len(png)} bytes]")
        elif part.get_filename():
            print(f"  [attachment {part.get_filename()}, {len(part.get_payload(decode=True))} bytes]")
PY

echo
echo "== The chat posts the export sent (local Slack, Discord and Telegram endpoints)"
# notify sends them after the job ends, one medium after another: wait for the three.
for _ in $(seq 1 40); do
  curl -sf "$LOCAL_CHAT_URL/captured" -o "$STATE_DIR/chat.json"
  [[ $(py -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$STATE_DIR/chat.json") -ge 3 ]] && break
  sleep 0.5
done
py - "$STATE_DIR/chat.json" <<'PY'
import json, sys
for post in json.load(open(sys.argv[1])):
    body = post["body"]
    text = body.get("text") or body.get("content") or ""
    print(f"  {post['method']} {post['path']}: {text[:160]!r}")
PY

echo
echo "== The signed link in the Discord post, followed without any login"
link=$(py - "$STATE_DIR/chat.json" <<'PY'
import json, re, sys
for post in json.load(open(sys.argv[1])):
    found = re.search(r"http\S*/links/\S+", post["body"].get("content") or "")
    if found:
        print(found.group(0))
        break
PY
)
if [[ -n $link ]]; then
  echo "  ${link%%\?*}?expires=...&key=...&signature=..."
  echo "  -> HTTP $(curl -s -o /dev/null -w '%{http_code} to %{redirect_url}' "$link" | cut -c1-120)..."
fi

echo
echo "== The export's figures, read from the functions' metric lines (CloudWatch's embedded"
echo "   metric format, written to the log with the other lines; in AWS they become metrics)"
py - "$STATE_DIR/watch.log" "$id" <<'PY'
import json, sys
from collections import defaultdict
path, export = sys.argv[1], sys.argv[2]
totals = defaultdict(float)
invocations = defaultdict(int)
outcomes = defaultdict(int)
for line in open(path, errors="replace"):
    line = line.strip()
    if not line.startswith("{") or '"_aws"' not in line:
        continue
    try:
        doc = json.loads(line)
    except ValueError:
        continue
    if doc.get("exportId") != export:
        continue
    function = doc.get("Function", "?")
    invocations[(function, doc.get("requestId"))] += 1
    for directive in doc["_aws"].get("CloudWatchMetrics", []):
        for metric in directive.get("Metrics", []):
            name = metric["Name"]
            value = doc.get(name)
            values = value if isinstance(value, list) else [value]
            values = [v for v in values if isinstance(v, (int, float))]
            if name == "Runs" and "outcome" in doc:
                outcomes[doc["outcome"]] += int(sum(values))
            elif name == "Messages":
                outcomes[f"{doc.get('medium')} {doc.get('result')}"] += int(sum(values))
            elif name in ("RunDuration", "ReaderLatency"):
                totals[name] = max([totals[name]] + values)
            else:
                totals[name] += sum(values)
runs = len([k for k in invocations if k[0] == "run-export"])
print(f"  run-export invocations: {runs}; outcomes and messages: {dict(outcomes)}")
for name in ("ReaderPages", "PointsRead", "ReaderRetries", "RowsWritten", "BytesWritten"):
    print(f"  {name}: {totals[name]:.0f}")
print(f"  legs of its job and item runs, summed (JobLegs): {totals['JobLegs']:.0f}")
print(f"  slowest invocation: {totals['RunDuration']:.0f} ms; slowest reader page: {totals['ReaderLatency']:.0f} ms")
PY

echo
echo "== The same items as a PDF report (format.extension pdf): the job's download is one document;"
echo "   its first page rendered by pdftoppm, and its text as pdftotext reads it"
report_body=$(printf '%s' "$one_time" | py -c '
import json, sys
body = json.load(sys.stdin)
body["format"]["extension"] = "pdf"
body["format"]["pdf"] = {"pageSize": "A4", "orientation": "portrait"}
body["notification"]["messages"] = []
print(json.dumps(body))')
report_id=$(create_export "$report_body")
wait_export "$report_id"
echo "export $report_id: $status"
location=$(curl -s -o /dev/null -w '%{redirect_url}' "$API/exports/$report_id/download" -H "x-local-identity: $IDENTITY" -H "authorization: Bearer $LOCAL_USER_TOKEN")
if [[ -n $location ]] && curl -sf "$location" -o "$STATE_DIR/report.pdf"; then
  echo "  $(pdfinfo "$STATE_DIR/report.pdf" | grep -E '^(Pages|Page size|File size)' | tr -s ' ' | paste -sd ';' -)"
  pdftoppm -png -r 60 -f 1 -l 1 "$STATE_DIR/report.pdf" "$STATE_DIR/report-page"
  echo "  the first page as an image: $(ls "$STATE_DIR"/report-page*.png)"
  pdftotext -l 1 "$STATE_DIR/report.pdf" - | grep -v '^$' | head -24 | sed 's/^/    /'
else
  echo "  no report to show (status $status)"
fi

echo
echo "demo done; stopping the stack"
