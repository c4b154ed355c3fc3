//! The SAM template holds to the code: every function it deploys is a binary of the workspace,
//! every environment variable a function reads is set for it, and each function's policy grants
//! the AWS actions its code calls (and the adapters call no AWS operation this test does not
//! know the action of).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The source with all white space removed, so calls split across lines by rustfmt still match.
fn squeezed(path: &str) -> String {
    read(path).chars().filter(|c| !c.is_whitespace()).collect()
}

/// Variables only local runs set; a deployment must not (`LOCAL_IDENTITY`; secrets in plain text,
/// where deployments name SSM parameters instead) or need not.
const LOCAL_ONLY: [&str; 10] = [
    "SLACK_DEFAULT_WEBHOOK",
    "DISCORD_DEFAULT_WEBHOOK",
    "LINK_SIGNING_KEYS",
    "ACCESS_POLICY_TOKEN",
    "LOCAL_IDENTITY",
    "S3_FORCE_PATH_STYLE",
    "TELEGRAM_API_URL",
    "RUST_LOG",
    "READER_TOKEN",
    "TELEGRAM_BOT_TOKEN",
];

/// A function's sources, squeezed and joined.
fn function_code(function: &str) -> String {
    let dir = root().join(format!("functions/{function}/src"));
    let mut code = String::new();
    for entry in std::fs::read_dir(&dir).expect("the function's sources") {
        let path = entry.expect("readable").path();
        let relative = path
            .strip_prefix(root())
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        code.push_str(&squeezed(&relative));
    }
    code
}

/// The environment variables a function reads: in its own sources (its composition root and its
/// configuration's `from_env`), and in the shared readers of `config.rs` that it calls.
fn variables_read(function: &str) -> BTreeSet<String> {
    let mut source = function_code(function);
    // Shared readers a function calls: (the call, its file, where its body starts and ends).
    let shared: [(&str, &str, &str, &str); 12] = [
        ("telemetry::init(", "telemetry.rs", "pubfninit", "fndescribe"),
        ("stores()", "config.rs", "pubfnstores", "pubfn"),
        ("retention()", "config.rs", "pubfnretention", "pubfn"),
        (
            "catch_up_lateness()",
            "config.rs",
            "pubfncatch_up_lateness",
            "pubfn",
        ),
        (
            "subtopic_separator()",
            "config.rs",
            "pubfnsubtopic_separator",
            "pubfn",
        ),
        ("link_signer(", "ssm.rs", "pubasyncfnlink_signer", "pubfn"),
        ("reader_dialect()", "config.rs", "pubfnreader_dialect", "pubfn"),
        (
            "credential_scheme(",
            "config.rs",
            "pubfncredential_scheme",
            "pubfn",
        ),
        ("recipients()", "config.rs", "pubfnrecipients", "pubfn"),
        (
            "schedule_settings()",
            "config.rs",
            "pubfnschedule_settings",
            "pubfn",
        ),
        ("webhook_hosts()", "config.rs", "pubfnwebhook_hosts", "pubfn"),
        (
            "AccessMode::from_env()",
            "access.rs",
            "implAccessMode{",
            "pubfnchecker",
        ),
    ];
    for (call, file, start, end) in shared {
        if source.contains(call) {
            let code = squeezed(&format!("shared/adapters/src/{file}"));
            let at = code.find(start).unwrap_or_else(|| panic!("{start} in {file}"));
            let until = code[at + start.len()..]
                .find(end)
                .map_or(code.len(), |n| at + start.len() + n);
            source.push_str(&code[at..until]);
        }
    }
    let mut names = BTreeSet::new();
    for reader in [
        "required(\"",
        "optional(\"",
        "parsed_or(\"",
        "flag(\"",
        "list_or(\"",
        ">(\"",
        "secret(&ssm,\"",
        "secret(ssm,\"",
        "default_target(\"",
        "\",\"",
    ] {
        let mut rest = source.as_str();
        while let Some(at) = rest.find(reader) {
            let tail = &rest[at + reader.len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            if !name.is_empty() && tail[name.len()..].starts_with('"') {
                names.insert(name);
            }
            rest = tail;
        }
    }
    names
}

/// The IAM actions behind each port method the functions call (`field.method(` in their code).
fn actions_of(call: &str) -> &'static [&'static str] {
    match call {
        "exports.get" => &["dynamodb:GetItem"],
        "exports.list_by_owner" | "history.jobs" | "history.recent_jobs" => &["dynamodb:Query"],
        "history.job" => &["dynamodb:GetItem"],
        "lifecycle.insert" => &["dynamodb:UpdateItem", "dynamodb:PutItem"],
        "lifecycle.activate" => &["dynamodb:UpdateItem"],
        "lifecycle.discard" => &["dynamodb:DeleteItem", "dynamodb:UpdateItem"],
        "lifecycle.soft_delete" => &["dynamodb:GetItem", "dynamodb:UpdateItem"],
        "lifecycle.revise" => &["dynamodb:UpdateItem"],
        "runs.settle_one_time" => &["dynamodb:UpdateItem"],
        "runs.advance_next_run" => &["dynamodb:UpdateItem", "dynamodb:GetItem"],
        "ledger.open_job"
        | "ledger.release_job"
        | "ledger.start_job"
        | "ends.finish_job"
        | "ends.record_unrun"
        | "ends.handed_off"
        | "ends.stop_handing_off"
        | "ledger.checkpoint_job"
        | "ledger.resume_job" => &["dynamodb:UpdateItem"],
        "deliveries.claim_delivery"
        | "deliveries.record_delivery"
        | "deliveries.notified"
        | "budgets.spend" => &["dynamodb:UpdateItem"],
        "schedules.arm" => &[
            "scheduler:CreateSchedule",
            "scheduler:UpdateSchedule",
            "iam:PassRole",
        ],
        "schedules.disarm" => &["scheduler:DeleteSchedule"],
        "schedules.armed" => &["scheduler:ListSchedules"],
        "sweep.live_exports" | "sweep.stalled_jobs" | "sweep.quotas" | "sweep.unhanded_jobs" => {
            &["dynamodb:Query"]
        }
        "sweep.abandon_job" | "sweep.set_quota" => &["dynamodb:UpdateItem"],
        "spread.spread_job"
        | "spread.launch_item"
        | "spread.next_item"
        | "items.claim_item"
        | "items.release_item"
        | "items.checkpoint_item" => &["dynamodb:UpdateItem"],
        "items.item_done" => &["dynamodb:UpdateItem", "dynamodb:GetItem"],
        "spread.item_outcomes" => &["dynamodb:GetItem"],
        "spread.item_runs" => &["dynamodb:Query"],
        "launcher.launch" | "notifier.job_ended" => &["lambda:InvokeFunction"],
        "files.put" => &["s3:PutObject", "s3:AbortMultipartUpload"],
        "files.remove" => &["s3:DeleteObject"],
        "files.remove_all" => &[
            "s3:ListBucket",
            "s3:DeleteObject",
            "s3:ListBucketMultipartUploads",
            "s3:AbortMultipartUpload",
        ],
        "uploads.abandon_unfinished" => &["s3:ListBucketMultipartUploads", "s3:AbortMultipartUpload"],
        // Finishing a file an earlier attempt finished asks whether it is there.
        "uploads.finish" => &["s3:PutObject", "s3:GetObject"],
        "files.put_bytes" | "uploads.begin" | "uploads.append" => &["s3:PutObject"],
        "files.presign" | "files.read" | "pieces.read_range" | "pieces.download" => &["s3:GetObject"],
        "mailer.send" => &["ses:SendEmail"],
        _ => &[],
    }
}

/// The port methods, by field name as the functions' `Deps` name them.
const PORT_CALLS: [(&str, &[&str]); 19] = [
    ("budgets", &["spend"]),
    ("exports", &["get", "list_by_owner"]),
    (
        "lifecycle",
        &["insert", "activate", "discard", "soft_delete", "revise"],
    ),
    ("runs", &["advance_next_run", "settle_one_time"]),
    ("history", &["jobs", "job", "recent_jobs"]),
    (
        "ledger",
        &[
            "open_job",
            "release_job",
            "start_job",
            "checkpoint_job",
            "resume_job",
        ],
    ),
    (
        "ends",
        &["finish_job", "record_unrun", "handed_off", "stop_handing_off"],
    ),
    ("deliveries", &["claim_delivery", "record_delivery"]),
    ("schedules", &["arm", "disarm", "armed"]),
    (
        "sweep",
        &[
            "live_exports",
            "stalled_jobs",
            "unhanded_jobs",
            "abandon_job",
            "quotas",
            "set_quota",
        ],
    ),
    (
        "items",
        &["claim_item", "release_item", "checkpoint_item", "item_done"],
    ),
    (
        "spread",
        &[
            "spread_job",
            "launch_item",
            "next_item",
            "item_outcomes",
            "item_runs",
        ],
    ),
    ("launcher", &["launch"]),
    ("notifier", &["job_ended"]),
    (
        "files",
        &["put", "put_bytes", "read", "remove", "remove_all", "presign"],
    ),
    ("pieces", &["read_range", "download"]),
    ("uploads", &["begin", "append", "finish", "abandon_unfinished"]),
    ("mailer", &["send"]),
    ("reader", &["read"]),
];

/// The actions a function's code needs.
fn actions_needed(function: &str) -> BTreeSet<String> {
    let code = function_code(function);
    let mut needed = BTreeSet::new();
    if code.contains("secret(&ssm,") || code.contains("secret(ssm,") || code.contains("link_signer(") {
        needed.insert("ssm:GetParameter".to_owned());
    }
    // The one-time scan that gives records older than the sweep's index their key.
    if code.contains(".index_for_sweeps(") {
        needed.extend(
            [
                "dynamodb:Scan",
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "dynamodb:PutItem",
            ]
            .map(str::to_owned),
        );
    }
    // The hand-off, the core's rule: notify asked, then the job marked.
    if code.contains("chain::hand_off(") {
        needed.extend(["lambda:InvokeFunction", "dynamodb:UpdateItem"].map(str::to_owned));
    }
    for (field, methods) in PORT_CALLS {
        for method in methods {
            if code.contains(&format!("{field}.{method}(")) {
                needed.extend(
                    actions_of(&format!("{field}.{method}"))
                        .iter()
                        .map(|a| (*a).to_owned()),
                );
            }
        }
    }
    needed
}

struct Function {
    binary: String,
    variables: BTreeSet<String>,
}

fn text(yaml: &Yaml) -> Option<String> {
    yaml.as_str().map(str::to_owned)
}

fn template_functions() -> BTreeMap<String, Function> {
    let docs = YamlLoader::load_from_str(&read("infra/template.yaml")).expect("valid YAML");
    let resources = docs[0]["Resources"].as_hash().expect("Resources");
    // Variables every function is given (SAM merges them into each function's own).
    let global: BTreeSet<String> = docs[0]["Globals"]["Function"]["Environment"]["Variables"]
        .as_hash()
        .map(|vars| vars.keys().filter_map(text).collect())
        .unwrap_or_default();
    let mut functions = BTreeMap::new();
    for (_, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        // Built once by `cargo lambda build`; each function is packaged from its binary's folder.
        let code = text(&resource["Properties"]["CodeUri"]).expect("a CodeUri");
        let binary = code
            .trim_end_matches('/')
            .strip_prefix("../target/lambda/")
            .expect("CodeUri is ../target/lambda/<binary>/")
            .to_owned();
        let mut variables: BTreeSet<String> = resource["Properties"]["Environment"]["Variables"]
            .as_hash()
            .map(|vars| vars.keys().filter_map(text).collect())
            .unwrap_or_default();
        variables.extend(global.iter().cloned());
        functions.insert(binary.clone(), Function { binary, variables });
    }
    functions
}

#[test]
fn every_function_in_the_template_is_a_binary_of_the_workspace() {
    let functions = template_functions();
    assert_eq!(
        functions.keys().cloned().collect::<Vec<_>>(),
        ["authorize", "exports-api", "notify", "reconcile", "run-export"]
    );
    for function in functions.values() {
        let manifest = read(&format!("functions/{}/Cargo.toml", function.binary));
        assert!(
            manifest.contains(&format!("name = \"{}\"", function.binary)),
            "{}",
            function.binary
        );
    }
}

/// Variables the template sets for the runtime rather than for the code: glibc's allocator.
const RUNTIME_READS: [&str; 1] = ["MALLOC_MMAP_THRESHOLD_"];

#[test]
fn every_variable_a_function_reads_is_set_for_it_in_the_template() {
    for function in template_functions().values() {
        let read = variables_read(&function.binary);
        assert!(
            read.contains("TABLE_NAME") || read.contains("CALLER_AUTH"),
            "{}: the scan found {read:?}",
            function.binary
        );
        let missing: Vec<&String> = read
            .iter()
            .filter(|v| !function.variables.contains(*v) && !LOCAL_ONLY.contains(&v.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: not set in the template: {missing:?}",
            function.binary
        );
        let local: Vec<&String> = function
            .variables
            .iter()
            .filter(|v| LOCAL_ONLY.contains(&v.as_str()))
            .collect();
        assert!(
            local.is_empty(),
            "{}: local-only variables in the template: {local:?}",
            function.binary
        );
        let unread: Vec<&String> = function
            .variables
            .iter()
            .filter(|v| !read.contains(*v) && !RUNTIME_READS.contains(&v.as_str()))
            .collect();
        assert!(
            unread.is_empty(),
            "{}: set but never read: {unread:?}",
            function.binary
        );
    }
}

/// The actions each function's role grants in the template as CloudFormation receives it (the
/// roles SAM makes of each function's `Policies`, with what SAM adds: sending to a dead-letter
/// queue, which Lambda does with the function's role), by binary; `None` without the translator.
fn translated_grants() -> Option<BTreeMap<String, BTreeSet<String>>> {
    let resources = integration_tests::translated_template()?;
    let mut grants = BTreeMap::new();
    for (_, function) in resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Function")
    {
        let p = &function["Properties"];
        let name = p["FunctionName"]["Fn::Sub"]
            .as_str()
            .expect("functions are named by the stack");
        let binary = name
            .strip_prefix("${AWS::StackName}-")
            .expect("${AWS::StackName}-<binary>");
        let role = p["Role"]["Fn::GetAtt"][0]
            .as_str()
            .expect("each function has a role of its own");
        let mut actions = BTreeSet::new();
        for policy in resources[role]["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_array()
                .into_iter()
                .flatten()
            {
                match &statement["Action"] {
                    serde_json::Value::Array(list) => {
                        actions.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)));
                    }
                    single => actions.extend(single.as_str().map(str::to_owned)),
                }
            }
        }
        if !p["DeadLetterConfig"].is_null() {
            // Lambda's own use of the role: the code never calls it.
            assert!(
                actions.remove("sqs:SendMessage"),
                "{binary}: a dead-letter queue it may not send to"
            );
        }
        grants.insert(binary.to_owned(), actions);
    }
    Some(grants)
}

#[test]
fn each_function_is_granted_exactly_the_actions_its_code_calls() {
    let Some(grants) = translated_grants() else { return };
    assert_eq!(
        grants.keys().collect::<Vec<_>>(),
        template_functions().keys().collect::<Vec<_>>(),
        "every function of the SAM template has a role in the translated one"
    );
    for (binary, granted) in &grants {
        let needed = actions_needed(binary);
        let missing: Vec<&String> = needed.difference(granted).collect();
        assert!(missing.is_empty(), "{binary}: the role lacks {missing:?}");
        // SES authorises a raw v2 send as either action, so both are granted for it.
        let extra: Vec<&String> = granted
            .difference(&needed)
            .filter(|a| a.as_str() != "ses:SendRawEmail")
            .collect();
        assert!(extra.is_empty(), "{binary}: granted but never called: {extra:?}");
    }
}

#[test]
fn the_adapters_call_only_operations_whose_actions_are_known() {
    // Each SDK operation the adapters call, and the action the port table above charges for it.
    let known: BTreeMap<&str, &str> = [
        ("transact_write_items", "dynamodb:UpdateItem"),
        ("update_item", "dynamodb:UpdateItem"),
        ("put_item", "dynamodb:PutItem"),
        ("get_item", "dynamodb:GetItem"),
        ("query", "dynamodb:Query"),
        ("create_schedule", "scheduler:CreateSchedule"),
        ("update_schedule", "scheduler:UpdateSchedule"),
        ("delete_schedule", "scheduler:DeleteSchedule"),
        ("list_schedules", "scheduler:ListSchedules"),
        ("scan", "dynamodb:Scan"),
        ("invoke", "lambda:InvokeFunction"),
        ("create_multipart_upload", "s3:PutObject"),
        ("upload_part", "s3:PutObject"),
        ("complete_multipart_upload", "s3:PutObject"),
        ("abort_multipart_upload", "s3:AbortMultipartUpload"),
        ("delete_object", "s3:DeleteObject"),
        ("list_objects_v2", "s3:ListBucket"),
        ("list_multipart_uploads", "s3:ListBucketMultipartUploads"),
        ("put_object", "s3:PutObject"),
        ("get_object", "s3:GetObject"),
        ("head_object", "s3:GetObject"),
        ("send_email", "ses:SendEmail"),
    ]
    .into_iter()
    .collect();
    // Operations used only to create resources locally and in tests, never by a function.
    let setup_only = [
        "create_table",
        "update_time_to_live",
        "create_schedule_group",
        "create_bucket",
    ];
    for adapter in ["dynamodb", "scheduler", "lambda", "s3", "ses"] {
        // An adapter is a file, or a folder of files by role.
        let folder = root().join(format!("shared/adapters/src/{adapter}"));
        let source = match std::fs::read_dir(&folder) {
            Ok(entries) => {
                let mut files: Vec<PathBuf> = entries.map(|e| e.expect("an entry").path()).collect();
                files.sort();
                assert!(!files.is_empty(), "{adapter}: an empty folder");
                files
                    .iter()
                    .map(|f| {
                        squeezed(&format!(
                            "shared/adapters/src/{adapter}/{}",
                            f.file_name().expect("a name").to_string_lossy()
                        ))
                    })
                    .collect::<String>()
            }
            Err(_) => squeezed(&format!("shared/adapters/src/{adapter}.rs")),
        };
        let mut rest = source.as_str();
        while let Some(at) = rest.find("client.") {
            let tail = &rest[at + "client.".len()..];
            let operation: String = tail
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if tail[operation.len()..].starts_with("()") && !setup_only.contains(&operation.as_str()) {
                assert!(
                    known.contains_key(operation.as_str()),
                    "{adapter}: unknown operation {operation}"
                );
            }
            rest = tail;
        }
    }
}

#[test]
fn the_event_functions_have_reserved_concurrency_so_a_flood_of_runs_cannot_starve_the_api() {
    let docs = YamlLoader::load_from_str(&read("infra/template.yaml")).expect("valid YAML");
    for (function, parameter) in [
        ("RunExportFunction", "RunExportReservedConcurrency"),
        ("NotifyFunction", "NotifyReservedConcurrency"),
    ] {
        let reserved = &docs[0]["Resources"][function]["Properties"]["ReservedConcurrentExecutions"];
        // `!Ref Parameter`: the YAML reader keeps the parameter's name and drops the tag.
        assert_eq!(reserved.as_str(), Some(parameter), "{function}");
        let default = docs[0]["Parameters"][parameter]["Default"]
            .as_i64()
            .expect("a default");
        assert!((1..=100).contains(&default), "{parameter}: {default}");
    }
    let api = &docs[0]["Resources"]["ExportsApiFunction"]["Properties"];
    assert!(
        api["ReservedConcurrentExecutions"].is_badvalue(),
        "the API is not capped"
    );
}

#[test]
fn claims_outlast_their_function_by_less_than_the_first_retry() {
    let docs = YamlLoader::load_from_str(&read("infra/template.yaml")).expect("valid YAML");
    for (function, variable) in [
        ("RunExportFunction", "JOB_LEASE_SECONDS"),
        ("NotifyFunction", "DELIVERY_CLAIM_SECONDS"),
    ] {
        let properties = &docs[0]["Resources"][function]["Properties"];
        let timeout = properties["Timeout"].as_i64().expect("a Timeout");
        let claim: i64 = properties["Environment"]["Variables"][variable]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect(variable);
        // Longer than any invocation can run; shorter than the minute Lambda waits before its
        // first retry of a timed-out asynchronous invocation, so that retry takes the work over.
        assert!(
            timeout < claim && claim < timeout + 60,
            "{function}: timeout {timeout}, {variable} {claim}"
        );
    }
}

fn template() -> Yaml {
    YamlLoader::load_from_str(&read("infra/template.yaml"))
        .expect("valid YAML")
        .remove(0)
}

/// Every statement of every function's policies.
fn statements(doc: &Yaml) -> Vec<Yaml> {
    let mut all = Vec::new();
    for (_, resource) in doc["Resources"].as_hash().expect("Resources") {
        for policy in resource["Properties"]["Policies"].as_vec().into_iter().flatten() {
            all.extend(policy["Statement"].as_vec().into_iter().flatten().cloned());
        }
    }
    all
}

#[test]
fn a_function_may_pass_the_scheduler_role_only_to_the_scheduler() {
    let doc = template();
    let passes: Vec<Yaml> = statements(&doc)
        .into_iter()
        .filter(|s| s["Action"].as_str() == Some("iam:PassRole"))
        .collect();
    assert_eq!(
        passes.len(),
        3,
        "exports-api, run-export and reconcile pass the role"
    );
    for statement in passes {
        assert_eq!(
            statement["Condition"]["StringEquals"]["iam:PassedToService"].as_str(),
            Some("scheduler.amazonaws.com"),
            "{statement:?}"
        );
    }
}

#[test]
fn the_bucket_refuses_every_request_not_over_tls() {
    let doc = template();
    let policy = &doc["Resources"]["ExportsBucketPolicy"]["Properties"];
    assert_eq!(policy["Bucket"].as_str(), Some("ExportsBucket"));
    let statements = policy["PolicyDocument"]["Statement"]
        .as_vec()
        .expect("statements");
    assert!(
        statements.iter().any(|s| s["Effect"].as_str() == Some("Deny")
            && s["Action"].as_str() == Some("s3:*")
            && s["Condition"]["Bool"]["aws:SecureTransport"].as_str() == Some("false")),
        "{statements:?}"
    );
}

#[test]
fn every_function_logs_to_a_group_with_a_retention() {
    let doc = template();
    for (name, resource) in doc["Resources"].as_hash().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let group = resource["Properties"]["LoggingConfig"]["LogGroup"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?} names its log group"));
        let group = &doc["Resources"][group];
        assert_eq!(group["Type"].as_str(), Some("AWS::Logs::LogGroup"));
        assert_eq!(
            group["Properties"]["RetentionInDays"].as_str(),
            Some("LogRetentionDays")
        );
    }
}

#[test]
fn webhook_urls_come_from_ssm_never_from_the_environment() {
    let doc = template();
    let notify = &doc["Resources"]["NotifyFunction"]["Properties"]["Environment"]["Variables"];
    for secret in ["SLACK_DEFAULT_WEBHOOK", "DISCORD_DEFAULT_WEBHOOK"] {
        assert!(notify[secret].is_badvalue(), "{secret} in plain text");
        assert!(
            notify[format!("{secret}_PARAMETER").as_str()].as_str().is_some(),
            "{secret}_PARAMETER"
        );
    }
}
