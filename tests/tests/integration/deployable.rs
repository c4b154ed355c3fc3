//! What the deployment relies on, asserted on the template as CloudFormation receives it: the
//! SAM template translated by `aws-sam-translator` (as `sam deploy` does; see
//! `scripts/infra_check.py`), not the SAM source, whose `AWS::Serverless::*` resources hide what
//! they become. Each rule is a function over the translated resources; a planted fault in each
//! shows the rule can fail.
//!
//! The translation needs the project's `.venv` (`scripts/stack.sh install`); without it the
//! tests say so and pass, except under `CI=true`, where they fail.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

fn translated() -> Option<BTreeMap<String, Value>> {
    integration_tests::translated_template()
}

type Resources = BTreeMap<String, Value>;
type Rule = fn(&Resources) -> Result<(), String>;
/// Plants a fault in a copy of the resources.
type Plant = fn(&mut Resources);

fn of_type<'a>(resources: &'a Resources, kind: &str) -> Vec<(&'a String, &'a Value)> {
    resources.iter().filter(|(_, r)| r["Type"] == kind).collect()
}

fn props<'a>(resources: &'a Resources, name: &str) -> Result<&'a Value, String> {
    resources
        .get(name)
        .map(|r| &r["Properties"])
        .ok_or_else(|| format!("no resource {name}"))
}

/// The logical ids a value refers to: `Ref`, `Fn::GetAtt`, and `${Name}` in `Fn::Sub`.
fn references(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("Ref", Value::String(name)) => {
                        into.insert(name.clone());
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        if let Some(Value::String(name)) = parts.first() {
                            into.insert(name.clone());
                        }
                    }
                    ("Fn::GetAtt", Value::String(dotted)) => {
                        into.insert(dotted.split('.').next().unwrap_or_default().to_owned());
                    }
                    ("Fn::Sub", sub) => {
                        let text = match sub {
                            Value::String(t) => t.as_str(),
                            Value::Array(parts) => parts.first().and_then(Value::as_str).unwrap_or(""),
                            _ => "",
                        };
                        let mut rest = text;
                        while let Some(at) = rest.find("${") {
                            let tail = &rest[at + 2..];
                            let name: String = tail.chars().take_while(|c| *c != '}' && *c != '.').collect();
                            if !name.starts_with("AWS::") && !name.starts_with('!') {
                                into.insert(name);
                            }
                            rest = tail;
                        }
                        references(sub, into);
                    }
                    _ => references(inner, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, into)),
        _ => {}
    }
}

/// CloudFormation refuses a stack whose resources depend on each other in a loop.
fn no_dependency_cycle(resources: &Resources) -> Result<(), String> {
    let edges: BTreeMap<&String, BTreeSet<String>> = resources
        .iter()
        .map(|(name, resource)| {
            let mut to = BTreeSet::new();
            references(resource, &mut to);
            to.retain(|t| resources.contains_key(t));
            (name, to)
        })
        .collect();
    // Depth-first search; a node met again while on the path closes a cycle.
    fn visit<'a>(
        node: &'a String,
        edges: &'a BTreeMap<&String, BTreeSet<String>>,
        path: &mut Vec<&'a String>,
        done: &mut BTreeSet<&'a String>,
    ) -> Result<(), String> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let cycle: Vec<&str> = path[at..].iter().map(|n| n.as_str()).collect();
            return Err(format!("a dependency cycle: {} -> {node}", cycle.join(" -> ")));
        }
        if done.contains(node) {
            return Ok(());
        }
        path.push(node);
        if let Some(next) = edges.get(node) {
            for n in next {
                if let Some((key, _)) = edges.get_key_value(n) {
                    visit(key, edges, path, done)?;
                }
            }
        }
        path.pop();
        done.insert(node);
        Ok(())
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

/// The files' bucket: no public access at all, and every request not over TLS refused.
fn bucket_is_private_and_tls_only(resources: &Resources) -> Result<(), String> {
    let bucket = props(resources, "ExportsBucket")?;
    let block = &bucket["PublicAccessBlockConfiguration"];
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        if block[flag] != true {
            return Err(format!("the bucket's {flag} is not on"));
        }
    }
    let policies = of_type(resources, "AWS::S3::BucketPolicy");
    let tls_only = policies.iter().any(|(_, p)| {
        p["Properties"]["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                let tls = &s["Condition"]["Bool"]["aws:SecureTransport"];
                s["Effect"] == "Deny" && (tls == "false" || tls == false)
            })
    });
    tls_only
        .then_some(())
        .ok_or_else(|| "no bucket policy denies requests that are not over TLS".into())
}

/// Files expire, and uploads a failed run left open are aborted.
fn files_expire_and_open_uploads_are_aborted(resources: &Resources) -> Result<(), String> {
    let rules = props(resources, "ExportsBucket")?["LifecycleConfiguration"]["Rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let enabled = |r: &&Value| r["Status"] == "Enabled";
    if !rules
        .iter()
        .filter(enabled)
        .any(|r| !r["ExpirationInDays"].is_null())
    {
        return Err("no lifecycle rule expires the files".into());
    }
    if !rules
        .iter()
        .filter(enabled)
        .any(|r| !r["AbortIncompleteMultipartUpload"].is_null())
    {
        return Err("no lifecycle rule aborts incomplete uploads".into());
    }
    Ok(())
}

/// The table: its keys, the owners' index, expiring items and point-in-time recovery.
fn table_has_keys_index_ttl_and_recovery(resources: &Resources) -> Result<(), String> {
    let table = props(resources, "Table")?;
    if table["KeySchema"]
        != json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    {
        return Err(format!("the table's keys are {}", table["KeySchema"]));
    }
    let indexes = table["GlobalSecondaryIndexes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for index in ["byOwner", "bySweep"] {
        if !indexes.iter().any(|i| i["IndexName"] == index) {
            return Err(format!("the table has no {index} index"));
        }
    }
    if table["TimeToLiveSpecification"]["Enabled"] != true {
        return Err("the table's items never expire (TTL off)".into());
    }
    if table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] != true {
        return Err("the table has no point-in-time recovery".into());
    }
    Ok(())
}

/// Every function: arm64 (what `make package` builds), its memory and timeout set, its logs
/// in a group of its own that forgets.
fn functions_run_arm64_with_limits_and_kept_logs(resources: &Resources) -> Result<(), String> {
    let functions = of_type(resources, "AWS::Lambda::Function");
    if functions.len() != 5 {
        return Err(format!("{} functions, not 5", functions.len()));
    }
    for (name, function) in functions {
        let p = &function["Properties"];
        if p["Architectures"] != json!(["arm64"]) {
            return Err(format!("{name} is not arm64"));
        }
        if p["MemorySize"].is_null() || p["Timeout"].is_null() {
            return Err(format!("{name} has no memory size or timeout"));
        }
        let mut groups = BTreeSet::new();
        references(&p["LoggingConfig"], &mut groups);
        let kept = groups.iter().any(|g| {
            resources.get(g).is_some_and(|r| {
                r["Type"] == "AWS::Logs::LogGroup" && !r["Properties"]["RetentionInDays"].is_null()
            })
        });
        if !kept {
            return Err(format!("{name} logs to no group with a retention"));
        }
    }
    Ok(())
}

/// run-export has room on disk for a file and its workbook; run-export and notify have a
/// reserve of concurrency, so a flood of runs cannot starve the API.
fn runs_have_room_and_reserves(resources: &Resources) -> Result<(), String> {
    let run = props(resources, "RunExportFunction")?;
    if run["EphemeralStorage"]["Size"].as_u64().unwrap_or(512) < 4096 {
        return Err("run-export has less than 4 GiB of disk".into());
    }
    for name in ["RunExportFunction", "NotifyFunction"] {
        if props(resources, name)?["ReservedConcurrentExecutions"].is_null() {
            return Err(format!("{name} has no reserved concurrency"));
        }
    }
    Ok(())
}

/// The asynchronously invoked functions keep what they could not do in a queue, and a queue
/// that holds anything raises an alarm; so does the schedules' queue.
fn dead_letters_are_kept_and_alarmed(resources: &Resources) -> Result<(), String> {
    let alarmed = |queue: &str| {
        of_type(resources, "AWS::CloudWatch::Alarm").iter().any(|(_, a)| {
            let mut to = BTreeSet::new();
            references(&a["Properties"]["Dimensions"], &mut to);
            to.contains(queue)
        })
    };
    for name in ["RunExportFunction", "NotifyFunction"] {
        let mut to = BTreeSet::new();
        references(&props(resources, name)?["DeadLetterConfig"], &mut to);
        let queue = to
            .into_iter()
            .find(|q| resources.get(q).is_some_and(|r| r["Type"] == "AWS::SQS::Queue"))
            .ok_or_else(|| format!("{name} has no dead-letter queue"))?;
        if !alarmed(&queue) {
            return Err(format!("{name}'s dead-letter queue {queue} has no alarm"));
        }
    }
    if !alarmed("ScheduleDeadLetterQueue") {
        return Err("the schedules' dead-letter queue has no alarm".into());
    }
    if of_type(resources, "AWS::Scheduler::ScheduleGroup").is_empty() {
        return Err("no schedule group".into());
    }
    Ok(())
}

/// Every function a function names (`*_FUNCTION`, `RUN_EXPORT_ARN`) is one the template
/// deploys, under that name, and the caller's role may invoke it: functions refer to each other
/// by name (no `!Ref`, no cycle), so a name that drifts would pass CloudFormation and fail the
/// first invoke in AWS.
fn functions_invoke_the_functions_they_name(resources: &Resources) -> Result<(), String> {
    let sub = |v: &Value| v["Fn::Sub"].as_str().map(str::to_owned);
    let arn = |name: &str| {
        format!("arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{name}")
    };
    let deployed: BTreeSet<String> = of_type(resources, "AWS::Lambda::Function")
        .iter()
        .filter_map(|(_, f)| sub(&f["Properties"]["FunctionName"]))
        .collect();
    let invokable = |role: &str| -> BTreeSet<String> {
        let mut arns = BTreeSet::new();
        for policy in resources
            .get(role)
            .and_then(|r| r["Properties"]["Policies"].as_array().cloned())
            .unwrap_or_default()
        {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                if !statement["Action"].to_string().contains("lambda:InvokeFunction") {
                    continue;
                }
                match &statement["Resource"] {
                    Value::Array(items) => arns.extend(items.iter().filter_map(sub)),
                    one => arns.extend(sub(one)),
                }
            }
        }
        arns
    };
    for (name, function) in of_type(resources, "AWS::Lambda::Function") {
        let p = &function["Properties"];
        let role = p["Role"]["Fn::GetAtt"][0].as_str().unwrap_or_default();
        let may = invokable(role);
        for (variable, value) in p["Environment"]["Variables"].as_object().into_iter().flatten() {
            let called = match (variable.as_str(), sub(value)) {
                (v, Some(called)) if v.ends_with("_FUNCTION") => called,
                ("RUN_EXPORT_ARN", Some(called_arn)) => called_arn
                    .rsplit_once(":function:")
                    .map(|(_, n)| n.to_owned())
                    .unwrap_or_default(),
                _ => continue,
            };
            if !deployed.contains(&called) {
                return Err(format!(
                    "{name}'s {variable} names {called}, which no function is called"
                ));
            }
            if variable.ends_with("_FUNCTION") && !may.contains(&arn(&called)) {
                return Err(format!(
                    "{name} may not invoke {called}, which its {variable} names"
                ));
            }
        }
    }
    if !invokable("SchedulerRole").contains(&arn("${AWS::StackName}-run-export")) {
        return Err("the schedules' role may not invoke run-export".into());
    }
    Ok(())
}

/// Every route but the links' (whose signature is their credential) is behind the request
/// authorizer, which API Gateway calls with payload 2.0 for a simple answer, keyed (and cached)
/// by the `Authorization` header, and may invoke.
fn routes_are_behind_the_authorizer(resources: &Resources) -> Result<(), String> {
    let body = &props(resources, "Api")?["Body"];
    let schemes = body["components"]["securitySchemes"]
        .as_object()
        .ok_or("the API defines no security scheme")?;
    let (scheme, authorizer) = schemes
        .iter()
        .find(|(_, s)| {
            let mut named = BTreeSet::new();
            references(&s["x-amazon-apigateway-authorizer"]["authorizerUri"], &mut named);
            named.contains("AuthorizeFunction")
        })
        .ok_or("no security scheme calls AuthorizeFunction")?;
    let authorizer = &authorizer["x-amazon-apigateway-authorizer"];
    if authorizer["type"] != "request"
        || authorizer["authorizerPayloadFormatVersion"] != "2.0"
        || authorizer["enableSimpleResponses"] != json!(true)
        || authorizer["identitySource"] != json!(["$request.header.Authorization"])
    {
        return Err(format!(
            "the authorizer is not a cached 2.0 request authorizer: {authorizer}"
        ));
    }
    let paths = body["paths"].as_object().ok_or("the API has no routes")?;
    for (path, methods) in paths {
        for (method, operation) in methods.as_object().into_iter().flatten() {
            let expected = if path.starts_with("/links/") {
                "NONE"
            } else {
                scheme.as_str()
            };
            if operation["security"] != json!([{ expected: [] }]) {
                return Err(format!(
                    "{method} {path} is not guarded by {expected}: {}",
                    operation["security"]
                ));
            }
        }
    }
    let invokable = of_type(resources, "AWS::Lambda::Permission")
        .into_iter()
        .any(|(_, p)| {
            let mut named = BTreeSet::new();
            references(&p["Properties"]["FunctionName"], &mut named);
            named.contains("AuthorizeFunction") && p["Properties"]["Principal"] == "apigateway.amazonaws.com"
        });
    if !invokable {
        return Err("API Gateway may not invoke AuthorizeFunction".into());
    }
    Ok(())
}

const RULES: [(&str, Rule); 9] = [
    ("routes behind the authorizer", routes_are_behind_the_authorizer),
    ("no dependency cycle", no_dependency_cycle),
    ("bucket private, TLS only", bucket_is_private_and_tls_only),
    (
        "files expire, open uploads aborted",
        files_expire_and_open_uploads_are_aborted,
    ),
    (
        "table keys, index, TTL, recovery",
        table_has_keys_index_ttl_and_recovery,
    ),
    (
        "functions arm64, limits, logs",
        functions_run_arm64_with_limits_and_kept_logs,
    ),
    ("run-export's disk, reserves", runs_have_room_and_reserves),
    ("dead letters kept and alarmed", dead_letters_are_kept_and_alarmed),
    (
        "functions invoke the functions they name",
        functions_invoke_the_functions_they_name,
    ),
];

#[test]
fn the_translated_template_holds_every_rule_the_deployment_relies_on() {
    let Some(resources) = translated() else { return };
    let broken: Vec<String> = RULES
        .iter()
        .filter_map(|(name, rule)| rule(&resources).err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(broken.is_empty(), "{broken:#?}");
}

/// Each rule fails on a template with its fault planted.
#[test]
fn every_rule_fails_on_its_planted_fault() {
    let Some(resources) = translated() else { return };
    let planted: [(&str, Rule, Plant); 10] = [
        (
            "the exports route open to anyone",
            routes_are_behind_the_authorizer,
            |r| {
                r.get_mut("Api").expect("exists")["Properties"]["Body"]["paths"]["/exports"]
                    ["x-amazon-apigateway-any-method"]
                    .as_object_mut()
                    .map(|o| o.remove("security"));
            },
        ),
        (
            "the notifier's link to the API, through the API's function to run-export",
            no_dependency_cycle,
            |r| {
                r.get_mut("ExportsApiFunction").expect("exists")["Properties"]["Environment"]["Variables"]
                    ["RUN_EXPORT_ARN"] = json!({"Fn::GetAtt": ["RunExportFunction", "Arn"]});
                r.get_mut("RunExportFunction").expect("exists")["Properties"]["Environment"]["Variables"]
                    ["NOTIFY_FUNCTION"] = json!({"Ref": "NotifyFunction"});
            },
        ),
        (
            "a bucket policy without the TLS statement",
            bucket_is_private_and_tls_only,
            |r| {
                for (_, p) in r.iter_mut().filter(|(_, p)| p["Type"] == "AWS::S3::BucketPolicy") {
                    p["Properties"]["PolicyDocument"]["Statement"] = json!([]);
                }
            },
        ),
        (
            "no lifecycle rule aborting uploads",
            files_expire_and_open_uploads_are_aborted,
            |r| {
                if let Some(rules) = r.get_mut("ExportsBucket").expect("exists")["Properties"]
                    ["LifecycleConfiguration"]["Rules"]
                    .as_array_mut()
                {
                    for rule in rules {
                        rule.as_object_mut()
                            .map(|o| o.remove("AbortIncompleteMultipartUpload"));
                    }
                }
            },
        ),
        (
            "point-in-time recovery off",
            table_has_keys_index_ttl_and_recovery,
            |r| {
                r.get_mut("Table").expect("exists")["Properties"]["PointInTimeRecoverySpecification"]
                    ["PointInTimeRecoveryEnabled"] = json!(false);
            },
        ),
        (
            "a function built for x86_64",
            functions_run_arm64_with_limits_and_kept_logs,
            |r| {
                r.get_mut("NotifyFunction").expect("exists")["Properties"]["Architectures"] =
                    json!(["x86_64"]);
            },
        ),
        (
            "run-export with the default disk",
            runs_have_room_and_reserves,
            |r| {
                r.get_mut("RunExportFunction").expect("exists")["Properties"]
                    .as_object_mut()
                    .map(|p| p.remove("EphemeralStorage"));
            },
        ),
        (
            "the alarm of the async dead letters gone",
            dead_letters_are_kept_and_alarmed,
            |r| {
                r.remove("AsyncDeadLetterAlarm");
            },
        ),
        (
            "notify renamed, its callers not",
            functions_invoke_the_functions_they_name,
            |r| {
                r.get_mut("NotifyFunction").expect("exists")["Properties"]["FunctionName"] =
                    json!({"Fn::Sub": "${AWS::StackName}-notifier"});
            },
        ),
        (
            "run-export's role without its invoke of notify",
            functions_invoke_the_functions_they_name,
            |r| {
                let policies = r.get_mut("RunExportFunctionRole").expect("exists")["Properties"]["Policies"]
                    .as_array_mut()
                    .expect("policies");
                for policy in policies {
                    if let Some(statements) = policy["PolicyDocument"]["Statement"].as_array_mut() {
                        statements.retain(|s| !s["Action"].to_string().contains("lambda:InvokeFunction"));
                    }
                }
            },
        ),
    ];
    for (fault, rule, plant) in planted {
        let mut broken = resources.clone();
        plant(&mut broken);
        assert!(rule(&broken).is_err(), "the rule did not see: {fault}");
    }
}
