//! Workflows as a business sees them: a message or an opened conversation starts a run
//! that branches, tags, replies, waits and comments, through the real services and a
//! Channel's receiver; waits survive a killed process and two replicas, nothing is sent
//! twice, bad definitions are refused naming the step and field.
use std::time::Duration;

use ism_e2e::fixtures::{contact_writes, field_violations};
use ism_e2e::{Platform, Receiver, eventually};
use ism_proto::workflows::v1 as wf;
use ism_proto::workflows::v1::step::Kind;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

fn step(id: &str, next: &str, kind: Kind) -> wf::Step {
    wf::Step {
        id: id.into(),
        next: next.into(),
        kind: Some(kind),
        position: Some(wf::Position { x: 0.0, y: 0.0 }),
    }
}

fn send(text: &str) -> Kind {
    Kind::SendMessage(wf::SendMessageStep {
        content: Some(ism_e2e::fixtures::text_content(text)),
    })
}

fn workflow(
    name: &str,
    trigger: wf::trigger::Kind,
    steps: Vec<wf::Step>,
) -> wf::WorkflowDefinition {
    wf::WorkflowDefinition {
        name: name.into(),
        trigger: Some(wf::Trigger {
            kind: Some(trigger),
            conditions: Vec::new(),
        }),
        steps,
        ..Default::default()
    }
}

fn opened() -> wf::trigger::Kind {
    wf::trigger::Kind::ConversationOpened(wf::ConversationOpened::default())
}

#[tokio::test]
async fn a_message_starts_a_run_that_branches_tags_and_replies_once() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let trigger = wf::trigger::Kind::MessageReceived(wf::MessageReceived {
        pattern: "(?i)pric(e|ing)".into(),
        ..Default::default()
    });
    let branch = Kind::Branch(wf::BranchStep {
        cases: vec![wf::BranchCase {
            all: vec![wf::Condition {
                kind: Some(wf::condition::Kind::TextContains("enterprise".into())),
            }],
            next: "sales".into(),
        }],
        otherwise: "reply".into(),
    });
    let created = api
        .create_workflow(workflow(
            "Pricing",
            trigger,
            vec![
                step("check", "", branch),
                step(
                    "sales",
                    "reply",
                    Kind::AddTags(wf::AddTagsStep {
                        tags: vec!["enterprise".into()],
                    }),
                ),
                step("reply", "tag", send("Our prices: example.com/pricing")),
                step(
                    "tag",
                    "",
                    Kind::AddTags(wf::AddTagsStep {
                        tags: vec!["asked-pricing".into()],
                    }),
                ),
            ],
        ))
        .await;
    assert_eq!(created.published_version, 0, "a draft until published");
    let published = api.publish_workflow(&created.id).await;
    assert_eq!((published.published_version, published.enabled), (1, true));

    contact_writes(&platform, &tenant, "ada", "w-1", "hello").await;
    contact_writes(
        &platform,
        &tenant,
        "ada",
        "w-2",
        "Enterprise pricing, please",
    )
    .await;
    assert_eq!(
        outbound.wait_texts_to("ada", 1).await,
        ["Our prices: example.com/pricing"]
    );
    let runs = eventually(WAIT, "the completed run", || async {
        let runs = api.list_runs(&created.id).await;
        (runs.len() == 1 && runs[0].state() == wf::RunState::Completed).then_some(runs)
    })
    .await;
    let run = api.get_run(&runs[0].id).await;
    let taken: Vec<(&str, &str)> = run
        .steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(
        taken,
        [
            ("check", "branch"),
            ("sales", "add_tags"),
            ("reply", "send_message"),
            ("tag", "add_tags")
        ]
    );
    assert!(
        run.steps
            .iter()
            .all(|s| s.end_time.is_some() && s.error.is_empty())
    );
    assert!(
        run.steps[0].output.contains("\"case\":0"),
        "{}",
        run.steps[0].output
    );
    let contact = api.get_contact(&run.contact_id).await;
    let mut tags = contact.tags.clone();
    tags.sort();
    assert_eq!(tags, ["asked-pricing", "enterprise"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        outbound.texts_to("ada").len(),
        1,
        "the reply once, \"hello\" started nothing"
    );

    // A new version changes what new runs do; the history keeps the first run's version.
    let mut v2 = workflow(
        "Pricing",
        wf::trigger::Kind::MessageReceived(wf::MessageReceived {
            keywords: vec!["prices".into()],
            ..Default::default()
        }),
        vec![step("reply", "", send("Version two"))],
    );
    v2.reentry = wf::Reentry::Restart as i32;
    api.workflows
        .clone()
        .update_workflow(api.authed(wf::UpdateWorkflowRequest {
            workflow_id: created.id.clone(),
            definition: Some(v2),
        }))
        .await
        .expect("updated");
    assert_eq!(api.publish_workflow(&created.id).await.published_version, 2);
    contact_writes(&platform, &tenant, "ada", "w-3", "prices").await;
    assert_eq!(outbound.wait_texts_to("ada", 2).await[1], "Version two");
    assert_eq!(api.get_run(&run.id).await.version, 1);
}

#[tokio::test]
async fn a_waiting_run_survives_a_killed_process_and_sends_each_message_once() {
    let outbound = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_WORKFLOWS__LEASE_SECONDS", "2");
    let tenant = platform.bootstrap(&outbound.url);
    let workflows = platform.spawn_each()["workflows"];
    platform.wait_ready().await;
    let api = platform.api(&tenant).await;
    let welcome = api
        .create_workflow(workflow(
            "Welcome",
            opened(),
            vec![
                step("hello", "pause", send("Welcome!")),
                step(
                    "pause",
                    "again",
                    Kind::Wait(wf::WaitStep {
                        seconds: 4,
                        ..Default::default()
                    }),
                ),
                step("again", "note", send("Still there?")),
                step(
                    "note",
                    "",
                    Kind::Comment(wf::CommentStep {
                        body: "Followed up".into(),
                    }),
                ),
            ],
        ))
        .await;
    api.publish_workflow(&welcome.id).await;

    contact_writes(&platform, &tenant, "bob", "k-1", "hi").await;
    assert_eq!(outbound.wait_texts_to("bob", 1).await, ["Welcome!"]);
    let waiting = eventually(WAIT, "the waiting run", || async {
        let runs = api.list_runs(&welcome.id).await;
        runs.into_iter()
            .find(|r| r.state() == wf::RunState::Waiting)
    })
    .await;
    assert!(waiting.wake_time.is_some());
    platform.kill(workflows);
    platform.spawn("workflows");
    platform.wait_ready().await;

    let done = api
        .wait_for_run(&waiting.id, WAIT, "the run after the restart", |r| {
            r.state() == wf::RunState::Completed
        })
        .await;
    assert_eq!(done.steps.len(), 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(outbound.texts_to("bob"), ["Welcome!", "Still there?"]);
}

#[tokio::test]
async fn two_replicas_fire_each_timer_once() {
    let outbound = Receiver::start().await;
    let mut platform = Platform::new();
    let tenant = platform.bootstrap(&outbound.url);
    // Two replicas of workflows: one in the process serving everything, one alone.
    platform.spawn("all");
    platform.spawn("workflows");
    platform.wait_ready().await;
    let api = platform.api(&tenant).await;
    let follow_up = api
        .create_workflow(workflow(
            "Follow up",
            opened(),
            vec![
                step(
                    "pause",
                    "ask",
                    Kind::Wait(wf::WaitStep {
                        seconds: 2,
                        ..Default::default()
                    }),
                ),
                step("ask", "", send("How did we do?")),
            ],
        ))
        .await;
    api.publish_workflow(&follow_up.id).await;
    let contacts: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    for (i, contact) in contacts.iter().enumerate() {
        contact_writes(&platform, &tenant, contact, &format!("t-{i}"), "hi").await;
    }
    eventually(WAIT, "every run complete", || async {
        let runs = api.list_runs(&follow_up.id).await;
        (runs.len() == 6 && runs.iter().all(|r| r.state() == wf::RunState::Completed)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for contact in &contacts {
        assert_eq!(outbound.texts_to(contact), ["How did we do?"], "{contact}");
    }
}

#[tokio::test]
async fn a_failed_run_names_its_step_is_retried_from_it_and_a_runaway_loop_stops() {
    let outbound = Receiver::start().await;
    let (platform, tenant) =
        Platform::start_with(&outbound.url, &[("ISM_WORKFLOWS__STEP_BUDGET", "7")]).await;
    let api = platform.api(&tenant).await;
    let nobody = uuid::Uuid::new_v4().to_string();
    let assign = api
        .create_workflow(workflow(
            "Assign",
            opened(),
            vec![step(
                "assign",
                "",
                Kind::Assign(wf::AssignStep {
                    user_id: nobody,
                    team_id: String::new(),
                    ..Default::default()
                }),
            )],
        ))
        .await;
    api.publish_workflow(&assign.id).await;
    let looping = api
        .create_workflow(workflow(
            "Loop",
            opened(),
            vec![
                step(
                    "note",
                    "again",
                    Kind::Comment(wf::CommentStep {
                        body: "tick".into(),
                    }),
                ),
                step(
                    "again",
                    "",
                    Kind::Jump(wf::JumpStep {
                        to: "note".into(),
                        max_times: 10,
                    }),
                ),
            ],
        ))
        .await;
    api.publish_workflow(&looping.id).await;

    contact_writes(&platform, &tenant, "cy", "f-1", "hi").await;
    let failed = eventually(WAIT, "the failed run", || async {
        api.list_runs(&assign.id)
            .await
            .into_iter()
            .find(|r| r.state() == wf::RunState::Failed)
    })
    .await;
    assert!(
        failed.error.starts_with("step \"assign\""),
        "{}",
        failed.error
    );
    api.retry_run(&failed.id).await;
    let again = api
        .wait_for_run(&failed.id, WAIT, "the retried run to fail again", |r| {
            r.state() == wf::RunState::Failed && r.steps.len() == 2
        })
        .await;
    assert!(
        again
            .steps
            .iter()
            .all(|s| s.step_id == "assign" && !s.error.is_empty())
    );

    let stopped = eventually(WAIT, "the loop stopped by the budget", || async {
        api.list_runs(&looping.id)
            .await
            .into_iter()
            .find(|r| r.state() == wf::RunState::Failed)
    })
    .await;
    assert!(
        stopped.error.contains("step budget of 7"),
        "{}",
        stopped.error
    );
    assert_eq!(api.get_run(&stopped.id).await.steps.len(), 7);

    let cancel = api
        .workflows
        .clone()
        .cancel_run(api.authed(wf::CancelRunRequest {
            run_id: stopped.id.clone(),
        }))
        .await
        .expect_err("a failed run cannot be cancelled");
    assert_eq!(cancel.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn bad_workflows_are_refused_naming_the_step_and_field_and_nothing_is_saved() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let mut client = api.workflows.clone();
    let mut refuse = async |definition: wf::WorkflowDefinition| {
        client
            .create_workflow(api.authed(wf::CreateWorkflowRequest {
                definition: Some(definition),
            }))
            .await
            .expect_err("refused")
    };

    let eleven = Kind::Branch(wf::BranchStep {
        cases: (0..11)
            .map(|_| wf::BranchCase {
                all: vec![wf::Condition {
                    kind: Some(wf::condition::Kind::HasTag("vip".into())),
                }],
                next: "a".into(),
            })
            .collect(),
        otherwise: String::new(),
    });
    let mut bad = workflow(
        "",
        wf::trigger::Kind::MessageReceived(wf::MessageReceived {
            pattern: "(unclosed".into(),
            ..Default::default()
        }),
        vec![
            step("a", "", eleven),
            step(
                "b",
                "",
                Kind::Wait(wf::WaitStep {
                    seconds: 0,
                    ..Default::default()
                }),
            ),
            step(
                "c",
                "",
                Kind::Jump(wf::JumpStep {
                    to: "a".into(),
                    max_times: 11,
                }),
            ),
        ],
    );
    bad.steps.push(step("a", "", send("duplicate id")));
    let status = refuse(bad).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = field_violations(&status);
    fields.sort();
    assert_eq!(
        fields,
        [
            "definition.name",
            "definition.steps[0].branch.cases",
            "definition.steps[1].wait.seconds",
            "definition.steps[2].jump.max_times",
            "definition.steps[3].id",
            "definition.trigger.message_received.pattern",
        ]
    );

    let dangling = workflow("Dangling", opened(), vec![step("a", "nowhere", send("hi"))]);
    assert_eq!(
        field_violations(&refuse(dangling).await),
        ["definition.steps[0].next"]
    );
    let looped = workflow(
        "Loop",
        opened(),
        vec![step("a", "b", send("hi")), step("b", "a", send("again"))],
    );
    assert_eq!(
        field_violations(&refuse(looped).await),
        ["definition.steps[1]"]
    );
    let orphan = workflow(
        "Orphan",
        opened(),
        vec![step("a", "", send("hi")), step("b", "", send("lost"))],
    );
    assert_eq!(
        field_violations(&refuse(orphan).await),
        ["definition.steps[1]"]
    );
    let too_many = workflow(
        "Long",
        opened(),
        (0..101)
            .map(|i| step(&format!("s{i}"), &format!("s{}", i + 1), send("x")))
            .collect(),
    );
    assert_eq!(
        field_violations(&refuse(too_many).await),
        ["definition.steps"]
    );

    let listed = client
        .list_workflows(api.authed(wf::ListWorkflowsRequest {}))
        .await
        .expect("listed")
        .into_inner()
        .workflows;
    assert!(listed.is_empty(), "nothing saved: {listed:?}");
}

fn ask(question: &str, answer_type: wf::AnswerType) -> wf::AskStep {
    wf::AskStep {
        question: Some(ism_e2e::fixtures::text_content(question)),
        answer_type: answer_type.into(),
        timeout_seconds: 60,
        ..Default::default()
    }
}

#[tokio::test]
async fn questions_are_answered_retried_timed_out_and_saved_and_answers_start_nothing_else() {
    use ism_proto::contacts::v1 as ct;
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    api.create_contact_field(ct::ContactField {
        key: "seats".into(),
        label: "Seats".into(),
        r#type: ct::FieldType::Number as i32,
        ..Default::default()
    })
    .await;
    let seats = wf::AskStep {
        min: Some(1.0),
        max: Some(500.0),
        retries: 1,
        save_to_variable: "seats".into(),
        save_to_field: "seats".into(),
        timeout_seconds: 8,
        timeout_next: "late".into(),
        invalid_next: "human".into(),
        ..ask("How many seats?", wf::AnswerType::Number)
    };
    let plan = wf::AskStep {
        options: vec!["Basic".into(), "Pro".into()],
        save_to_variable: "plan".into(),
        save_as_tag: true,
        ..ask("Which plan? 1 Basic, 2 Pro", wf::AnswerType::Choice)
    };
    let route = Kind::Branch(wf::BranchStep {
        cases: vec![wf::BranchCase {
            all: vec![wf::Condition {
                kind: Some(wf::condition::Kind::VariableEquals(wf::Equals {
                    name: "plan".into(),
                    value: "pro".into(),
                })),
            }],
            next: "pro".into(),
        }],
        otherwise: "thanks".into(),
    });
    let steps = vec![
        step("seats", "plan", Kind::Ask(seats)),
        step("plan", "route", Kind::Ask(plan)),
        step("route", "", route),
        step(
            "pro",
            "thanks",
            Kind::AddTags(wf::AddTagsStep {
                tags: vec!["pro-lead".into()],
            }),
        ),
        step(
            "thanks",
            "",
            send("Thanks {{ contact.first_name }}: {{ vars.seats }} seats of {{ vars.plan }}."),
        ),
        step("late", "", send("No answer; we will write later.")),
        step(
            "human",
            "",
            Kind::Comment(wf::CommentStep {
                body: "Could not qualify".into(),
            }),
        ),
    ];
    let keyword = wf::trigger::Kind::MessageReceived(wf::MessageReceived {
        keywords: vec!["quote".into()],
        ..Default::default()
    });

    // Publishing checks what the steps name: a variable some path does not set, a field
    // that does not exist.
    let mut unset = steps.clone();
    unset[5] = step("late", "", send("You chose {{ vars.plan }}"));
    let mut unknown_field = unset.clone();
    if let Some(Kind::Ask(a)) = unknown_field[0].kind.as_mut() {
        a.save_to_field = "budget".into();
    }
    let refused = api
        .create_workflow(workflow("Bad", keyword.clone(), unknown_field))
        .await;
    let status = api
        .workflows
        .clone()
        .publish_workflow(api.authed(wf::PublishWorkflowRequest {
            workflow_id: refused.id.clone(),
        }))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        field_violations(&status),
        [
            "definition.steps[0].ask.save_to_field",
            "definition.steps[5].send_message.content.text.body"
        ]
    );
    assert_eq!(api.get_workflow(&refused.id).await.published_version, 0);

    let qualify = api
        .create_workflow(workflow("Qualify", keyword, steps))
        .await;
    api.publish_workflow(&qualify.id).await;
    // Were the answers not taken by the runs, this would start on "12".
    let numbers = api
        .create_workflow(workflow(
            "Numbers",
            wf::trigger::Kind::MessageReceived(wf::MessageReceived {
                pattern: r"^\d+$".into(),
                ..Default::default()
            }),
            vec![step("n", "", send("A number!"))],
        ))
        .await;
    api.publish_workflow(&numbers.id).await;

    // Ada answers wrongly once, then right, and picks a plan.
    contact_writes(&platform, &tenant, "ada", "q-1", "quote").await;
    outbound.wait_texts_to("ada", 1).await;
    contact_writes(&platform, &tenant, "ada", "q-2", "lots").await;
    assert_eq!(
        outbound.wait_texts_to("ada", 2).await[1],
        "Please answer with a number from 1 to 500."
    );
    contact_writes(&platform, &tenant, "ada", "q-3", "12").await;
    assert_eq!(
        outbound.wait_texts_to("ada", 3).await[2],
        "Which plan? 1 Basic, 2 Pro"
    );
    contact_writes(&platform, &tenant, "ada", "q-4", "pro").await;
    assert_eq!(
        outbound.wait_texts_to("ada", 4).await[3],
        "Thanks Ada: 12 seats of Pro."
    );
    // Bob never answers; Cy answers wrongly twice.
    contact_writes(&platform, &tenant, "bob", "q-5", "quote").await;
    contact_writes(&platform, &tenant, "cy", "q-6", "quote").await;
    outbound.wait_texts_to("cy", 1).await;
    contact_writes(&platform, &tenant, "cy", "q-7", "many").await;
    outbound.wait_texts_to("cy", 2).await;
    contact_writes(&platform, &tenant, "cy", "q-8", "900").await;

    let runs = eventually(WAIT, "three finished runs", || async {
        let runs = api.list_runs(&qualify.id).await;
        (runs.len() == 3 && runs.iter().all(|r| r.state() == wf::RunState::Completed))
            .then_some(runs)
    })
    .await;
    assert_eq!(
        outbound.wait_texts_to("bob", 2).await,
        ["How many seats?", "No answer; we will write later."]
    );
    assert_eq!(
        outbound.texts_to("cy"),
        [
            "How many seats?",
            "Please answer with a number from 1 to 500."
        ]
    );
    let mut histories = Vec::new();
    let mut ada = None;
    for run in &runs {
        let run = api.get_run(&run.id).await;
        let kinds: Vec<String> = run.steps.iter().map(|s| s.kind.clone()).collect();
        if kinds.len() == 8 {
            assert!(run.steps[1].output.contains("\"valid\":false"));
            assert_eq!(
                run.variables,
                [
                    ("plan".to_owned(), "Pro".to_owned()),
                    ("seats".to_owned(), "12".to_owned())
                ]
                .into()
            );
            ada = Some(run);
        }
        histories.push(kinds.join(" "));
    }
    histories.sort();
    assert_eq!(
        histories,
        [
            // Ada: one invalid answer, asked again, then both answers taken.
            "ask answer answer ask answer branch add_tags send_message",
            // Cy: two invalid answers, the retry spent, on to a human.
            "ask answer answer comment",
            // Bob: no answer in time.
            "ask answer_timeout send_message",
        ]
    );
    let ada = ada.expect("Ada's run");
    let contact = api.get_contact(&ada.contact_id).await;
    assert_eq!(
        contact.custom_fields["seats"].kind,
        Some(ct::field_value::Kind::Number(12.0))
    );
    assert_eq!(
        contact.tags,
        ["Pro", "pro-lead"],
        "the choice saved as a Tag too"
    );
    assert!(
        api.list_runs(&numbers.id).await.is_empty(),
        "answers start no other workflow"
    );
}

#[tokio::test]
async fn an_http_step_calls_once_with_its_key_saves_the_answer_and_refuses_internal_addresses() {
    let outbound = Receiver::start().await;
    // Only the stand-in's own address is allowed: the rest of 127/8 is loopback.
    let (platform, tenant) = Platform::start_with(
        &outbound.url,
        &[("ISM_EGRESS__ALLOW", r#"["127.0.0.1/32"]"#)],
    )
    .await;
    let api = platform.api(&tenant).await;
    let crm = Receiver::start().await;
    crm.script(&[
        (
            200,
            r#"{"order": {"status": "shipped", "eta": "2026-12-24"}}"#,
        ),
        (302, ""),
    ]);
    let call = |url: &str| wf::HttpRequestStep {
        method: "POST".into(),
        url: url.into(),
        headers: [("x-api-key".to_owned(), "k-1".to_owned())].into(),
        body: r#"{"name": "{{ contact.first_name }}"}"#.into(),
        save: [
            ("status".to_owned(), "/order/status".to_owned()),
            ("eta".to_owned(), "/order/eta".to_owned()),
        ]
        .into(),
        timeout_seconds: 5,
        failure_next: "sorry".into(),
    };
    let lookup = |url: &str| {
        workflow(
            "Order status",
            wf::trigger::Kind::MessageReceived(wf::MessageReceived {
                keywords: vec!["order".into()],
                ..Default::default()
            }),
            vec![
                step("lookup", "tell", Kind::HttpRequest(call(url))),
                step(
                    "tell",
                    "",
                    send("Your order is {{ vars.status }}, expected {{ vars.eta }}."),
                ),
                step("sorry", "", send("We could not look it up.")),
            ],
        )
    };

    // Internal addresses are refused when saved, naming the step's field.
    for internal in [
        "http://10.0.0.1/orders",
        "http://127.0.0.2/orders",
        "http://[fd00::1]/orders",
        "http://[::ffff:127.0.0.1]/orders",
        "http://169.254.169.254/latest/meta-data",
        "ftp://crm.example.com/orders",
    ] {
        let status = api
            .workflows
            .clone()
            .create_workflow(api.authed(wf::CreateWorkflowRequest {
                definition: Some(lookup(internal)),
            }))
            .await
            .expect_err(internal);
        assert_eq!(status.code(), Code::InvalidArgument, "{internal}");
        assert_eq!(
            field_violations(&status),
            ["definition.steps[0].http_request.url"],
            "{internal}"
        );
    }
    let orders = api.create_workflow(lookup(&crm.url)).await;
    api.publish_workflow(&orders.id).await;

    contact_writes(&platform, &tenant, "ada", "o-1", "order").await;
    assert_eq!(
        outbound.wait_texts_to("ada", 1).await,
        ["Your order is shipped, expected 2026-12-24."]
    );
    contact_writes(&platform, &tenant, "bob", "o-2", "order").await;
    assert_eq!(
        outbound.wait_texts_to("bob", 1).await,
        ["We could not look it up."]
    );
    let runs = eventually(WAIT, "two completed runs", || async {
        let runs = api.list_runs(&orders.id).await;
        (runs.len() == 2 && runs.iter().all(|r| r.state() == wf::RunState::Completed))
            .then_some(runs)
    })
    .await;
    let calls = crm.received();
    assert_eq!(calls.len(), 2, "one call per run");
    // Runs are listed newest first: Bob's, then Ada's.
    for (call, run) in calls.iter().zip(runs.iter().rev()) {
        assert_eq!(call.headers["idempotency-key"], format!("{}:1", run.id));
        assert_eq!(call.headers["x-api-key"], "k-1");
        assert_eq!(call.headers["content-type"], "application/json");
        assert!(call.headers.contains_key("traceparent"));
        let body: serde_json::Value = serde_json::from_slice(&call.body).expect("JSON");
        assert_eq!(body, serde_json::json!({"name": "Ada"}));
    }
    let bob = api.get_run(&runs[0].id).await;
    assert!(
        bob.steps[0].output.contains("redirects are not followed"),
        "{}",
        bob.steps[0].output
    );
    let ada = api.get_run(&runs[1].id).await;
    assert_eq!(
        ada.variables,
        [
            ("eta".to_owned(), "2026-12-24".to_owned()),
            ("status".to_owned(), "shipped".to_owned())
        ]
        .into()
    );
}

#[tokio::test]
async fn assignment_rules_fields_tags_a_closed_trigger_and_started_workflows_act_once() {
    use ism_proto::contacts::v1 as ct;
    use ism_proto::conversations::v1 as cv;
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start_with(
        &outbound.url,
        &[("ISM_WORKFLOWS__ASSIGN_RETRY_SECONDS", "1")],
    )
    .await;
    let api = platform.api(&tenant).await;
    api.create_contact_field(ct::ContactField {
        key: "stage".into(),
        label: "Stage".into(),
        r#type: ct::FieldType::Text as i32,
        ..Default::default()
    })
    .await;
    let empty_team = api.create_team("Nobody here").await;
    let round_robin = |team_id: &str, timeout_seconds: u32, timeout_next: &str| {
        Kind::Assign(wf::AssignStep {
            team_id: team_id.into(),
            rules: Some(cv::AssignmentRules {
                strategy: cv::AssignmentStrategy::RoundRobin as i32,
                ..Default::default()
            }),
            timeout_seconds,
            timeout_next: timeout_next.into(),
            ..Default::default()
        })
    };

    // Started by the closing workflow: a survey that tags and records the stage.
    let survey = api
        .create_workflow(workflow(
            "Survey",
            wf::trigger::Kind::Manual(wf::Manual {}),
            vec![
                step("bye", "stage", send("Thanks for talking to us!")),
                step(
                    "stage",
                    "",
                    Kind::UpdateField(wf::UpdateFieldStep {
                        key: "stage".into(),
                        value: "closed {{ contact.first_name }}".into(),
                    }),
                ),
            ],
        ))
        .await;
    api.publish_workflow(&survey.id).await;
    let on_close = api
        .create_workflow(workflow(
            "On close",
            wf::trigger::Kind::ConversationClosed(wf::ConversationClosed::default()),
            vec![
                step(
                    "untag",
                    "survey",
                    Kind::RemoveTags(wf::RemoveTagsStep {
                        tags: vec!["waiting".into()],
                    }),
                ),
                step(
                    "survey",
                    "",
                    Kind::StartWorkflow(wf::StartWorkflowStep {
                        workflow_id: survey.id.clone(),
                    }),
                ),
            ],
        ))
        .await;
    api.publish_workflow(&on_close.id).await;

    // A workflow may not start one that starts it back, nor one that is not manual.
    let mut back = api.get_workflow(&survey.id).await.draft.expect("draft");
    back.steps[1].next = "again".into();
    back.steps.push(step(
        "again",
        "",
        Kind::StartWorkflow(wf::StartWorkflowStep {
            workflow_id: survey.id.clone(),
        }),
    ));
    back.steps.push(step(
        "close-again",
        "",
        Kind::StartWorkflow(wf::StartWorkflowStep {
            workflow_id: on_close.id.clone(),
        }),
    ));
    back.steps[2].next = "close-again".into();
    api.workflows
        .clone()
        .update_workflow(api.authed(wf::UpdateWorkflowRequest {
            workflow_id: survey.id.clone(),
            definition: Some(back),
        }))
        .await
        .expect("a draft is saved");
    let status = api
        .workflows
        .clone()
        .publish_workflow(api.authed(wf::PublishWorkflowRequest {
            workflow_id: survey.id.clone(),
        }))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        field_violations(&status),
        [
            "definition.steps[2].start_workflow.workflow_id",
            "definition.steps[3].start_workflow.workflow_id"
        ]
    );
    assert_eq!(api.get_workflow(&survey.id).await.published_version, 1);

    // A new conversation: tagged, no one in the Team (given up after 2 s), then the
    // Workspace's round-robin assigns it, and it is unassigned again.
    // Once per Contact: the survey's message reopens the conversation.
    let mut routing = workflow(
        "Routing",
        opened(),
        vec![
            step(
                "tag",
                "team",
                Kind::AddTags(wf::AddTagsStep {
                    tags: vec!["waiting".into()],
                }),
            ),
            step("team", "", round_robin(&empty_team.id, 2, "anyone")),
            step("anyone", "release", round_robin("", 0, "")),
            step("release", "", Kind::Unassign(wf::UnassignStep {})),
        ],
    );
    routing.once_per_contact = true;
    let routing = api.create_workflow(routing).await;
    api.publish_workflow(&routing.id).await;
    contact_writes(&platform, &tenant, "ada", "r-1", "hello").await;
    let routed = eventually(WAIT, "the routing run", || async {
        api.list_runs(&routing.id)
            .await
            .into_iter()
            .find(|r| r.state() == wf::RunState::Completed)
    })
    .await;
    let routed = api.get_run(&routed.id).await;
    let taken: Vec<(&str, &str)> = routed
        .steps
        .iter()
        .map(|s| (s.step_id.as_str(), s.output.as_str()))
        .collect();
    assert_eq!(taken.len(), 4, "{taken:?}");
    assert!(taken[1].1.contains("\"timed_out\":true"), "{taken:?}");
    assert!(
        taken[2].1.contains(&tenant.owner_user_id),
        "assigned to the only User: {taken:?}"
    );
    let conversation = api.get_conversation(&routed.conversation_id).await;
    assert!(conversation.assignee_user_id.is_empty(), "unassigned again");
    assert_eq!(api.get_contact(&routed.contact_id).await.tags, ["waiting"]);

    // Closing it starts the closing workflow, which starts the survey once.
    api.close_conversation(cv::CloseConversationRequest {
        id: conversation.id.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        outbound.wait_texts_to("ada", 1).await,
        ["Thanks for talking to us!"]
    );
    let surveyed = eventually(WAIT, "the survey run", || async {
        let runs = api.list_runs(&survey.id).await;
        (runs.len() == 1 && runs[0].state() == wf::RunState::Completed).then_some(runs)
    })
    .await;
    let contact = api.get_contact(&surveyed[0].contact_id).await;
    assert!(contact.tags.is_empty(), "{:?}", contact.tags);
    assert_eq!(
        contact.custom_fields["stage"].kind,
        Some(ct::field_value::Kind::Text("closed Ada".into()))
    );
    let closing = api.list_runs(&on_close.id).await;
    assert_eq!(closing.len(), 1);
    let closing = api.get_run(&closing[0].id).await;
    assert!(
        closing.steps[1].output.contains(&surveyed[0].id),
        "{}",
        closing.steps[1].output
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(outbound.texts_to("ada").len(), 1, "the survey ran once");
}

#[tokio::test]
async fn date_and_time_conditions_follow_the_workspaces_hours_and_time_zone() {
    use chrono::Datelike;
    use ism_proto::workspaces::v1 as ws;
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    // Open every day but today (in the Workspace's zone, Tokyo).
    let tokyo = chrono::Utc::now() + chrono::TimeDelta::hours(9);
    let today = tokyo.weekday().number_from_monday() as i32;
    api.update_workspace(ws::UpdateWorkspaceRequest {
        timezone: Some("Asia/Tokyo".into()),
        business_hours: Some(ws::BusinessHours {
            intervals: (1..=7)
                .filter(|d| *d != today)
                .map(|weekday| ws::BusinessHoursInterval {
                    weekday,
                    open: "00:00".into(),
                    close: "23:59".into(),
                })
                .collect(),
        }),
        ..Default::default()
    })
    .await;
    let condition = |kind| wf::Condition { kind: Some(kind) };
    let yesterday = (tokyo - chrono::TimeDelta::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let branch = Kind::Branch(wf::BranchStep {
        cases: vec![
            wf::BranchCase {
                all: vec![condition(wf::condition::Kind::TimeWindow(wf::TimeWindow {
                    until_date: yesterday,
                    ..Default::default()
                }))],
                next: "past".into(),
            },
            wf::BranchCase {
                all: vec![
                    condition(wf::condition::Kind::BusinessHours(
                        wf::BusinessHoursCondition { open: false },
                    )),
                    condition(wf::condition::Kind::TimeWindow(wf::TimeWindow {
                        weekdays: vec![today],
                        ..Default::default()
                    })),
                ],
                next: "closed".into(),
            },
        ],
        otherwise: "open".into(),
    });
    let hours = api
        .create_workflow(workflow(
            "Hours",
            opened(),
            vec![
                step("when", "", branch),
                step("past", "", send("A window that ended yesterday holds?")),
                step("closed", "", send("We are closed today.")),
                step("open", "", send("We are open.")),
            ],
        ))
        .await;
    api.publish_workflow(&hours.id).await;
    let wait = |name: &str, wait: wf::WaitStep| {
        workflow(
            name,
            opened(),
            vec![
                step("wait", "then", Kind::Wait(wait)),
                step("then", "", send("Later")),
            ],
        )
    };
    let until_open = api
        .create_workflow(wait(
            "Until open",
            wf::WaitStep {
                until_open: true,
                ..Default::default()
            },
        ))
        .await;
    api.publish_workflow(&until_open.id).await;
    let at_nine = api
        .create_workflow(wait(
            "At nine",
            wf::WaitStep {
                until_time: "09:00".into(),
                ..Default::default()
            },
        ))
        .await;
    api.publish_workflow(&at_nine.id).await;
    contact_writes(&platform, &tenant, "ada", "h-1", "hello").await;
    assert_eq!(
        outbound.wait_texts_to("ada", 1).await,
        ["We are closed today."]
    );
    // Tokyo's wall clock as if it were UTC, back to the instant: 9 hours earlier.
    let instant = |local: chrono::NaiveDateTime| local.and_utc().timestamp() - 9 * 3600;
    let tomorrow = tokyo.date_naive() + chrono::Days::new(1);
    let nine = chrono::NaiveTime::from_hms_opt(9, 0, 0).expect("09:00");
    let next_nine = if tokyo.time() < nine {
        tokyo.date_naive().and_time(nine)
    } else {
        tomorrow.and_time(nine)
    };
    for (flow, expected) in [
        (
            &until_open,
            instant(tomorrow.and_time(chrono::NaiveTime::MIN)),
        ),
        (&at_nine, instant(next_nine)),
    ] {
        let waiting = eventually(WAIT, "the waiting run", || async {
            let runs = api.list_runs(&flow.id).await;
            runs.into_iter()
                .find(|r| r.state() == wf::RunState::Waiting)
        })
        .await;
        let wake = waiting.wake_time.expect("a wake time").seconds;
        assert_eq!(wake, expected, "{} wakes then", flow.id);
    }

    let status = api
        .workflows
        .clone()
        .create_workflow(api.authed(wf::CreateWorkflowRequest {
            definition: Some(workflow(
                "Bad window",
                opened(),
                vec![step(
                    "when",
                    "",
                    Kind::Branch(wf::BranchStep {
                        cases: vec![wf::BranchCase {
                            all: vec![condition(wf::condition::Kind::TimeWindow(wf::TimeWindow {
                                from_date: "2026-13-01".into(),
                                weekdays: vec![8],
                                from_time: "25:00".into(),
                                ..Default::default()
                            }))],
                            next: String::new(),
                        }],
                        otherwise: String::new(),
                    }),
                )],
            )),
        }))
        .await
        .expect_err("refused");
    assert_eq!(
        field_violations(&status),
        [
            "definition.steps[0].branch.cases[0].all[0].time_window.from_date",
            "definition.steps[0].branch.cases[0].all[0].time_window.weekdays",
            "definition.steps[0].branch.cases[0].all[0].time_window.from_time",
        ]
    );
}

#[tokio::test]
async fn tag_and_field_changes_start_runs_in_the_contacts_latest_conversation() {
    use ism_proto::contacts::v1 as ct;
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    api.create_contact_field(ct::ContactField {
        key: "plan".into(),
        label: "Plan".into(),
        r#type: ct::FieldType::Text as i32,
        ..Default::default()
    })
    .await;
    let vip = api
        .create_workflow(workflow(
            "VIP",
            wf::trigger::Kind::ContactTagUpdated(wf::ContactTagUpdated {
                tags: vec!["VIP".into()],
                change: wf::TagChange::Added as i32,
            }),
            vec![step("hi", "", send("Welcome, VIP!"))],
        ))
        .await;
    api.publish_workflow(&vip.id).await;
    let plan = api
        .create_workflow(workflow(
            "Plan",
            wf::trigger::Kind::ContactFieldUpdated(wf::ContactFieldUpdated {
                keys: vec!["plan".into()],
            }),
            vec![step("note", "", send("Your plan changed."))],
        ))
        .await;
    api.publish_workflow(&plan.id).await;

    contact_writes(&platform, &tenant, "ada", "t-1", "hello").await;
    let conversation = api.wait_for_conversation(WAIT, |_| true).await;
    api.add_tags(vec![conversation.contact_id.clone()], &["other"])
        .await;
    api.add_tags(vec![conversation.contact_id.clone()], &["vip"])
        .await;
    let version = api.get_contact(&conversation.contact_id).await.version;
    api.update_contact(ct::UpdateContactRequest {
        id: conversation.contact_id.clone(),
        version,
        custom_fields: [(
            "plan".to_owned(),
            ct::FieldValue {
                kind: Some(ct::field_value::Kind::Text("gold".into())),
            },
        )]
        .into(),
        ..Default::default()
    })
    .await;
    let mut sent = outbound.wait_texts_to("ada", 2).await;
    sent.sort();
    assert_eq!(sent, ["Welcome, VIP!", "Your plan changed."]);
    for id in [&vip.id, &plan.id] {
        let runs = api.list_runs(id).await;
        assert_eq!(runs.len(), 1, "one run, not one for the other Tag");
        assert_eq!(runs[0].conversation_id, conversation.id);
    }
}

#[tokio::test]
async fn lifecycle_stages_move_contacts_start_runs_and_a_run_reopens_its_conversation() {
    use ism_proto::contacts::v1 as ct;
    use ism_proto::contacts::v1::import_contacts_request::Part;
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let stages = api
        .set_lifecycle_stages(&[("new_lead", "New Lead"), ("customer", "Customer")])
        .await;
    assert_eq!(stages.len(), 2);
    let mut contacts = api.contacts.clone();
    let listed = contacts
        .list_lifecycle_stages(api.authed(ct::ListLifecycleStagesRequest {}))
        .await
        .expect("ListLifecycleStages")
        .into_inner()
        .stages;
    let keys: Vec<&str> = listed.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["new_lead", "customer"], "in the order given");
    let twice = ct::SetLifecycleStagesRequest {
        stages: vec![
            ct::LifecycleStage {
                key: "lead".into(),
                name: "Lead".into(),
            },
            ct::LifecycleStage {
                key: "lead".into(),
                name: "Lead again".into(),
            },
        ],
    };
    let refused = contacts
        .set_lifecycle_stages(api.authed(twice))
        .await
        .expect_err("a key given twice");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&refused), ["stages[1].key"]);

    // A Contact at the customer stage is welcomed and tagged by a run; one that says
    // "upgrade" is moved there by another run, which also closes and reopens its conversation.
    let welcome = api
        .create_workflow(workflow(
            "Welcome customers",
            wf::trigger::Kind::LifecycleUpdated(wf::LifecycleUpdated {
                stages: vec!["customer".into()],
            }),
            vec![
                step(
                    "check",
                    "",
                    Kind::Branch(wf::BranchStep {
                        cases: vec![wf::BranchCase {
                            all: vec![wf::Condition {
                                kind: Some(wf::condition::Kind::LifecycleStage("customer".into())),
                            }],
                            next: "hi".into(),
                        }],
                        otherwise: String::new(),
                    }),
                ),
                step("hi", "tag", send("Welcome aboard!")),
                step(
                    "tag",
                    "",
                    Kind::AddTags(wf::AddTagsStep {
                        tags: vec!["customer-welcomed".into()],
                    }),
                ),
            ],
        ))
        .await;
    api.publish_workflow(&welcome.id).await;
    let upgrade_steps = vec![
        step(
            "move",
            "close",
            Kind::UpdateLifecycle(wf::UpdateLifecycleStep {
                stage: "customer".into(),
            }),
        ),
        step(
            "close",
            "open",
            Kind::Close(wf::CloseStep {
                summary: "upgraded".into(),
            }),
        ),
        step("open", "after", Kind::Open(wf::OpenStep {})),
        step("after", "", send("Your upgrade is done.")),
    ];
    let mut upgrade = workflow(
        "Upgrade",
        wf::trigger::Kind::MessageReceived(wf::MessageReceived {
            keywords: vec!["upgrade".into()],
            ..Default::default()
        }),
        upgrade_steps.clone(),
    );
    upgrade.steps[0].kind = Some(Kind::UpdateLifecycle(wf::UpdateLifecycleStep {
        stage: "vip".into(),
    }));
    let upgrade_flow = api.create_workflow(upgrade.clone()).await;
    let mut flows = api.workflows.clone();
    let unknown = flows
        .publish_workflow(api.authed(wf::PublishWorkflowRequest {
            workflow_id: upgrade_flow.id.clone(),
        }))
        .await
        .expect_err("a stage the Workspace does not have");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert_eq!(
        field_violations(&unknown),
        ["definition.steps[0].update_lifecycle.stage"]
    );
    upgrade.steps = upgrade_steps;
    flows
        .update_workflow(api.authed(wf::UpdateWorkflowRequest {
            workflow_id: upgrade_flow.id.clone(),
            definition: Some(upgrade),
        }))
        .await
        .expect("UpdateWorkflow");
    api.publish_workflow(&upgrade_flow.id).await;

    contact_writes(&platform, &tenant, "ada", "l-1", "hello").await;
    let first = api.wait_for_conversation(WAIT, |_| true).await;
    let ada = first.contact_id.clone();
    let version = api.get_contact(&ada).await.version;
    let mut moved = ct::UpdateContactRequest {
        id: ada.clone(),
        version,
        lifecycle_stage: Some("vip".into()),
        ..Default::default()
    };
    let refused = contacts
        .update_contact(api.authed(moved.clone()))
        .await
        .expect_err("no such stage");
    assert_eq!(field_violations(&refused), ["lifecycle_stage"]);
    assert_eq!(
        api.get_contact(&ada).await.version,
        version,
        "nothing changed"
    );
    moved.lifecycle_stage = Some("new_lead".into());
    assert_eq!(api.update_contact(moved).await.lifecycle_stage, "new_lead");
    let at = |stage: &str| ct::SearchContactsRequest {
        audience: Some(ct::search_contacts_request::Audience::Filter(ct::Filter {
            groups: vec![ct::ConditionGroup {
                conditions: vec![ct::Condition {
                    kind: Some(ct::condition::Kind::Field(ct::FieldCondition {
                        field: "lifecycle_stage".into(),
                        operator: ct::FieldOperator::Is as i32,
                        values: vec![ct::FieldValue {
                            kind: Some(ct::field_value::Kind::Text(stage.into())),
                        }],
                    })),
                }],
                ..Default::default()
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    let leads = api.search_contacts(at("new_lead")).await.contacts;
    assert_eq!(leads.iter().map(|c| &c.id).collect::<Vec<_>>(), [&ada]);

    contact_writes(&platform, &tenant, "ada", "l-2", "Upgrade").await;
    let mut sent = outbound.wait_texts_to("ada", 2).await;
    sent.sort();
    assert_eq!(
        sent,
        ["Welcome aboard!", "Your upgrade is done."],
        "the welcome run started on the move, the upgrade run went on after reopening"
    );
    let contact = api.get_contact(&ada).await;
    assert_eq!(contact.lifecycle_stage, "customer");
    assert!(contact.tags.contains(&"customer-welcomed".to_owned()));
    let runs = eventually(WAIT, "the upgrade run completed", || async {
        let runs = api.list_runs(&upgrade_flow.id).await;
        (runs.len() == 1 && runs[0].state() == wf::RunState::Completed).then_some(runs)
    })
    .await;
    let reopened = runs[0].conversation_id.clone();
    assert_ne!(
        reopened, first.id,
        "the run moved to the reopened conversation"
    );
    let opened = api.get_conversation(&reopened).await;
    assert_eq!(
        opened.opened_by(),
        ism_proto::conversations::v1::Party::Workflow
    );
    assert_eq!(
        api.get_conversation(&first.id).await.status(),
        ism_proto::conversations::v1::ConversationStatus::Closed
    );

    // Imports name stages by key or name; a stage nobody knows fails its row alone.
    let settings = ct::ImportSettings {
        columns: vec![
            ct::ColumnMapping {
                column: "email".into(),
                field: "email".into(),
            },
            ct::ColumnMapping {
                column: "stage".into(),
                field: "lifecycle_stage".into(),
            },
        ],
        r#match: ct::ImportMatch::Email as i32,
        channel_id: String::new(),
    };
    let csv = "email,stage\nbo@example.com,customer\ncy@example.com,New Lead\ndi@example.com,VIP\n";
    let import = api
        .import_contacts(futures::stream::iter([
            ct::ImportContactsRequest {
                part: Some(Part::Settings(settings)),
            },
            ct::ImportContactsRequest {
                part: Some(Part::Data(csv.as_bytes().to_vec())),
            },
        ]))
        .await;
    assert_eq!((import.created, import.failed), (2, 1));
    let report = String::from_utf8(import.error_report).expect("UTF-8");
    assert!(
        report.contains("4,stage,") && report.contains("VIP\"\" is not a lifecycle stage"),
        "{report}"
    );
    let customers = api.search_contacts(at("customer")).await.contacts;
    let mut emails: Vec<&str> = customers.iter().map(|c| c.email.as_str()).collect();
    emails.sort();
    assert_eq!(emails, ["", "bo@example.com"], "Ada and Bo");
    assert_eq!(api.search_contacts(at("new_lead")).await.contacts.len(), 1);

    // A stage Contacts are at is not removed from under them.
    let removing = contacts
        .set_lifecycle_stages(api.authed(ct::SetLifecycleStagesRequest {
            stages: vec![ct::LifecycleStage {
                key: "new_lead".into(),
                name: "New Lead".into(),
            }],
        }))
        .await
        .expect_err("two Contacts are customers");
    assert_eq!(removing.code(), Code::FailedPrecondition);
    assert!(removing.message().contains("2 contact(s)"), "{removing:?}");
}

#[tokio::test]
async fn a_workspace_with_limits_of_its_own_gets_them_and_others_the_defaults() {
    let outbound = Receiver::start().await;
    let mut platform = Platform::new();
    let limited = platform.bootstrap(&outbound.url);
    let other = platform.bootstrap(&outbound.url);
    let key = |name: &str| {
        format!(
            "ISM_WORKFLOWS__WORKSPACE_LIMITS__{}__{name}",
            limited.workspace_id
        )
    };
    platform.set(&key("MAX_STEPS"), "2");
    platform.set(&key("MAX_WORKFLOWS"), "1");
    platform.spawn("all");
    platform.wait_ready().await;
    let three = |name: &str| {
        workflow(
            name,
            opened(),
            vec![
                step("a", "b", send("one")),
                step("b", "c", send("two")),
                step("c", "", send("three")),
            ],
        )
    };
    let api = platform.api(&limited).await;
    let mut flows = api.workflows.clone();
    let refused = flows
        .create_workflow(api.authed(wf::CreateWorkflowRequest {
            definition: Some(three("Too long here")),
        }))
        .await
        .expect_err("three steps where two are allowed");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&refused), ["definition.steps"]);
    assert!(refused.message().contains("1 to 2 steps"), "{refused:?}");
    let mut two = three("Short");
    two.steps.truncate(2);
    two.steps[1].next.clear();
    api.create_workflow(two.clone()).await;
    let second = flows
        .create_workflow(api.authed(wf::CreateWorkflowRequest {
            definition: Some(two),
        }))
        .await
        .expect_err("one workflow allowed");
    assert_eq!(second.code(), Code::FailedPrecondition);
    assert!(second.message().contains("has 1 workflows"), "{second:?}");
    let listed = flows
        .list_workflows(api.authed(wf::ListWorkflowsRequest {}))
        .await
        .expect("ListWorkflows")
        .into_inner()
        .workflows;
    assert_eq!(listed.len(), 1, "nothing more saved");

    let others = platform.api(&other).await;
    others.create_workflow(three("Fine elsewhere")).await;
    others.create_workflow(three("And another")).await;
}

#[tokio::test]
async fn a_question_survives_a_killed_process_and_the_answer_given_meanwhile_is_taken() {
    let outbound = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_WORKFLOWS__LEASE_SECONDS", "2");
    let tenant = platform.bootstrap(&outbound.url);
    let workflows = platform.spawn_each()["workflows"];
    platform.wait_ready().await;
    let api = platform.api(&tenant).await;
    let email = wf::AskStep {
        save_to_variable: "email".into(),
        ..ask("Your email, please?", wf::AnswerType::Email)
    };
    let intake = api
        .create_workflow(workflow(
            "Intake",
            opened(),
            vec![
                step("email", "thanks", Kind::Ask(email)),
                step(
                    "thanks",
                    "",
                    send("Thanks, we will write to {{ vars.email }}."),
                ),
            ],
        ))
        .await;
    api.publish_workflow(&intake.id).await;

    contact_writes(&platform, &tenant, "cy", "q-1", "hi").await;
    assert_eq!(
        outbound.wait_texts_to("cy", 1).await,
        ["Your email, please?"]
    );
    let asking = eventually(WAIT, "the run awaiting the answer", || async {
        let runs = api.list_runs(&intake.id).await;
        runs.into_iter().find(|r| r.awaiting_answer)
    })
    .await;
    platform.kill(workflows);
    // The answer comes while no workflows process runs: it waits in its queue.
    contact_writes(&platform, &tenant, "cy", "q-2", "cy@example.com").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    platform.spawn("workflows");
    platform.wait_ready().await;

    let done = api
        .wait_for_run(&asking.id, WAIT, "the answered run", |r| {
            r.state() == wf::RunState::Completed
        })
        .await;
    assert_eq!(done.variables["email"], "cy@example.com");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        outbound.texts_to("cy"),
        [
            "Your email, please?",
            "Thanks, we will write to cy@example.com."
        ],
        "the question once, the thanks once"
    );
}

/// Posts `body` to a workflow's webhook path on the gateway, signed with `secret` as
/// `id` at `timestamp` (seconds); the status and the JSON answer.
async fn post_hook(
    platform: &Platform,
    path: &str,
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> (u16, serde_json::Value) {
    let signature = standardwebhooks::Webhook::new(secret)
        .expect("a whsec_ secret")
        .sign(id, timestamp, body.as_bytes())
        .expect("signed");
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}{path}", platform.http_port))
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .expect("gateway reachable");
    let code = response.status().as_u16();
    (code, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_signed_incoming_webhook_starts_one_run_with_its_body_as_variables() {
    use ism_proto::contacts::v1 as ct;
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let hook = |pointer: &str| {
        wf::trigger::Kind::IncomingWebhook(wf::IncomingWebhook {
            contact_pointer: pointer.into(),
            contact_key: wf::ContactKey::Email as i32,
            save: [
                ("order".to_owned(), "/order/id".to_owned()),
                ("total".to_owned(), "/order/total".to_owned()),
            ]
            .into(),
        })
    };
    let steps = vec![step(
        "confirm",
        "",
        send("Order {{ vars.order }} confirmed: {{ vars.total }} EUR."),
    )];
    let mut flows = api.workflows.clone();
    let refused = flows
        .create_workflow(api.authed(wf::CreateWorkflowRequest {
            definition: Some(workflow("Orders", hook("customer/email"), steps.clone())),
        }))
        .await
        .expect_err("not a JSON Pointer");
    assert_eq!(
        field_violations(&refused),
        ["definition.trigger.incoming_webhook.contact_pointer"]
    );
    let orders = api
        .create_workflow(workflow("Orders", hook("/customer/email"), steps))
        .await;
    let published = api.publish_workflow(&orders.id).await;
    let path = published.webhook_path.clone();
    assert_eq!(
        path,
        format!("/hooks/workflows/{}/{}", tenant.workspace_id, orders.id)
    );
    let secret = published.webhook_secret.clone();
    assert!(secret.starts_with("whsec_"), "owners see the secret");
    let agent = api.with_token(
        api.key_token("agent", ism_proto::workspaces::v1::Role::Agent)
            .await,
    );
    let seen = agent.get_workflow(&orders.id).await;
    assert_eq!(
        (seen.webhook_path.as_str(), seen.webhook_secret.as_str()),
        (path.as_str(), "")
    );

    contact_writes(&platform, &tenant, "ada", "o-1", "hello").await;
    let conversation = api.wait_for_conversation(WAIT, |_| true).await;
    let version = api.get_contact(&conversation.contact_id).await.version;
    api.update_contact(ct::UpdateContactRequest {
        id: conversation.contact_id.clone(),
        version,
        email: Some("ada@example.com".into()),
        ..Default::default()
    })
    .await;

    let now = chrono::Utc::now().timestamp();
    let body =
        r#"{"customer": {"email": "Ada@Example.com"}, "order": {"id": "A-1", "total": 42.5}}"#;
    let (code, first) = post_hook(&platform, &path, &secret, "msg_1", now, body).await;
    assert_eq!(code, 202, "{first}");
    let run_id = first["run_id"].as_str().expect("a run").to_owned();
    let (code, again) = post_hook(&platform, &path, &secret, "msg_1", now, body).await;
    assert_eq!(
        (code, &again["run_id"]),
        (202, &first["run_id"]),
        "a redelivery starts nothing new"
    );
    assert_eq!(
        outbound.wait_texts_to("ada", 1).await,
        ["Order A-1 confirmed: 42.5 EUR."]
    );
    let run = api
        .wait_for_run(&run_id, WAIT, "the webhook's run", |r| {
            r.state() == wf::RunState::Completed
        })
        .await;
    assert_eq!(run.conversation_id, conversation.id);
    assert_eq!(run.variables["order"], "A-1");

    // Every bad webhook is refused with its reason and starts nothing.
    let wrong_secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let stale = now - 3600;
    let foreign = format!("/hooks/workflows/{}/{}", uuid::Uuid::new_v4(), orders.id);
    let nobody = r#"{"customer": {"email": "nobody@example.com"}, "order": {}}"#;
    for (path, secret, timestamp, body, expected) in [
        (path.as_str(), wrong_secret, now, body, 401),
        (path.as_str(), secret.as_str(), stale, body, 401),
        (path.as_str(), secret.as_str(), now, "not json", 400),
        (
            path.as_str(),
            secret.as_str(),
            now,
            r#"{"customer": {}}"#,
            400,
        ),
        (path.as_str(), secret.as_str(), now, nobody, 404),
        (foreign.as_str(), secret.as_str(), now, body, 404),
    ] {
        let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
        let (code, answer) = post_hook(&platform, path, secret, &id, timestamp, body).await;
        assert_eq!(code, expected, "{body} at {timestamp} on {path}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    let long_id = "m".repeat(300);
    let (code, answer) = post_hook(&platform, &path, &secret, &long_id, now, body).await;
    assert_eq!(code, 400, "{answer}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(api.list_runs(&orders.id).await.len(), 1, "one run in all");
    assert_eq!(outbound.texts_to("ada").len(), 1);
}

#[tokio::test]
async fn a_schedule_runs_the_workflow_for_its_segment_while_enabled() {
    use ism_proto::contacts::v1 as ct;
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start_with(
        &outbound.url,
        &[("ISM_WORKFLOWS__MIN_SCHEDULE_SECONDS", "1")],
    )
    .await;
    let api = platform.api(&tenant).await;
    contact_writes(&platform, &tenant, "ada", "s-1", "hello").await;
    let ada = api.wait_for_conversation(WAIT, |_| true).await.contact_id;
    contact_writes(&platform, &tenant, "bob", "s-2", "hello").await;
    let bob = api
        .wait_for_conversation(WAIT, |c| c.contact_id != ada)
        .await
        .contact_id;
    api.add_tags(vec![ada.clone()], &["digest"]).await;
    let segment = api
        .create_segment(
            "Digest readers",
            ct::Filter {
                groups: vec![ct::ConditionGroup {
                    conditions: vec![ct::Condition {
                        kind: Some(ct::condition::Kind::Tags(ct::TagCondition {
                            operator: ct::TagOperator::HasAny as i32,
                            tags: vec!["digest".into()],
                        })),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await;
    let digest = |cron: &str, segment_id: &str| wf::WorkflowDefinition {
        once_per_contact: true,
        ..workflow(
            "Digest",
            wf::trigger::Kind::Schedule(wf::Schedule {
                cron: cron.into(),
                segment_id: segment_id.into(),
            }),
            vec![step("send", "", send("Your weekly digest"))],
        )
    };
    let mut flows = api.workflows.clone();
    let refused = flows
        .create_workflow(api.authed(wf::CreateWorkflowRequest {
            definition: Some(digest("every monday", &segment.id)),
        }))
        .await
        .expect_err("not cron");
    assert_eq!(
        field_violations(&refused),
        ["definition.trigger.schedule.cron"]
    );
    let elsewhere = api
        .create_workflow(digest("*/2 * * * * *", &uuid::Uuid::new_v4().to_string()))
        .await;
    let refused = flows
        .publish_workflow(api.authed(wf::PublishWorkflowRequest {
            workflow_id: elsewhere.id.clone(),
        }))
        .await
        .expect_err("no such Segment");
    assert_eq!(
        field_violations(&refused),
        ["definition.trigger.schedule.segment_id"]
    );

    let scheduled = api
        .create_workflow(digest("*/2 * * * * *", &segment.id))
        .await;
    api.publish_workflow(&scheduled.id).await;
    assert_eq!(
        outbound.wait_texts_to("ada", 1).await,
        ["Your weekly digest"]
    );
    api.set_workflow_enabled(&scheduled.id, false).await;
    api.add_tags(vec![bob.clone()], &["digest"]).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        outbound.texts_to("bob").is_empty(),
        "nothing while disabled"
    );
    api.set_workflow_enabled(&scheduled.id, true).await;
    assert_eq!(
        outbound.wait_texts_to("bob", 1).await,
        ["Your weekly digest"]
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        outbound.texts_to("ada").len(),
        1,
        "once per Contact, firing after firing"
    );
    let runs = api.list_runs(&scheduled.id).await;
    let mut contacts: Vec<&str> = runs.iter().map(|r| r.contact_id.as_str()).collect();
    contacts.sort();
    let mut expected = [ada.as_str(), bob.as_str()];
    expected.sort();
    assert_eq!(contacts, expected);
}

#[tokio::test]
async fn trigger_conditions_decide_whether_a_run_starts_at_all() {
    let outbound = Receiver::start().await;
    let (platform, tenant) = Platform::start(&outbound.url).await;
    let api = platform.api(&tenant).await;
    let mut vip_only = workflow(
        "VIP desk",
        wf::trigger::Kind::MessageReceived(wf::MessageReceived::default()),
        vec![step("hi", "", send("Welcome to the VIP desk."))],
    );
    let condition = |kind| wf::Condition { kind: Some(kind) };
    vip_only.trigger.as_mut().expect("a trigger").conditions = vec![
        condition(wf::condition::Kind::HasTag("vip".into())),
        condition(wf::condition::Kind::TextContains("help".into())),
    ];
    let mut flows = api.workflows.clone();
    let mut unknown = vip_only.clone();
    unknown.trigger.as_mut().expect("a trigger").conditions[0] =
        condition(wf::condition::Kind::FieldEquals(wf::Equals {
            name: "tier".into(),
            value: "gold".into(),
        }));
    let draft = api.create_workflow(unknown).await;
    let refused = flows
        .publish_workflow(api.authed(wf::PublishWorkflowRequest {
            workflow_id: draft.id.clone(),
        }))
        .await
        .expect_err("no such Field");
    assert_eq!(
        field_violations(&refused),
        ["definition.trigger.conditions[0].field_equals.name"]
    );
    let created = api.create_workflow(vip_only).await;
    api.publish_workflow(&created.id).await;

    contact_writes(&platform, &tenant, "ada", "c-1", "help please").await;
    let conversation = api.wait_for_conversation(WAIT, |_| true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(api.list_runs(&created.id).await.is_empty(), "not a VIP yet");
    api.add_tags(vec![conversation.contact_id.clone()], &["vip"])
        .await;
    contact_writes(&platform, &tenant, "ada", "c-2", "just saying hi").await;
    contact_writes(&platform, &tenant, "ada", "c-3", "help!").await;
    assert_eq!(
        outbound.wait_texts_to("ada", 1).await,
        ["Welcome to the VIP desk."]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        api.list_runs(&created.id).await.len(),
        1,
        "only the VIP's call for help"
    );
}
