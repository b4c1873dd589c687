//! The four families' published chat templates (tests/fixtures/chat_templates, sources in its
//! SOURCES.md) rendered by `ChatTemplate` against what transformers' `apply_chat_template`
//! renders for the same conversations (tests/fixtures/goldens/chat_templates.json, written by
//! tools/make_chat_goldens.py): system prompts, multi-turn, thinking on and off, tools,
//! whitespace, non-ASCII and text that looks like special tokens.

use diffulex_edge::text::{ChatMessage, ChatOptions, ChatTemplate};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Case {
    name: String,
    template: ChatTemplate,
    messages: Vec<ChatMessage>,
    options: ChatOptions,
    rendered: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("goldens/chat_templates.json")).unwrap();
    let goldens: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = goldens["cases"].as_array().unwrap();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    cases
        .iter()
        .map(|case| {
            let family = case["family"].as_str().unwrap();
            let path = fixtures()
                .join("chat_templates")
                .join(case["template"].as_str().unwrap());
            let token = |key: &str| case[key].as_str().unwrap_or("").to_string();
            let template = ChatTemplate::from_file(&path)
                .unwrap()
                .with_special_tokens(&token("bos_token"), &token("eos_token"));
            let messages = ChatMessage::parse_list(&case["messages"].to_string()).unwrap();
            let mut options = ChatOptions::default()
                .with_kwargs_json(&case["kwargs"].to_string())
                .unwrap();
            options.add_generation_prompt = case["add_generation_prompt"].as_bool().unwrap();
            Case {
                name: format!("{family}/{}", case["name"].as_str().unwrap()),
                template,
                messages,
                options,
                rendered: case["rendered"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

#[test]
fn renders_as_transformers_does() {
    let mut failures = Vec::new();
    for case in cases() {
        match case.template.render(&case.messages, &case.options) {
            Ok(text) if text == case.rendered => {}
            Ok(text) => failures.push(format!(
                "{}:\n  want {:?}\n  got  {:?}",
                case.name, case.rendered, text
            )),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Marked rendering gives the same text, with every message content marked as user text, for
/// every conversation whose contents the template inserts verbatim (or trimmed). Qwen3's
/// template rewrites assistant turns holding `<think>`: those, and only those, are refused.
#[test]
fn marked_rendering_gives_the_same_text_and_marks_the_contents() {
    let mut marked = 0;
    for case in cases() {
        match case.template.render_marked(&case.messages, &case.options) {
            Ok(m) => {
                assert_eq!(m.text(), case.rendered, "{}", case.name);
                let user: Vec<&str> = m
                    .user_ranges()
                    .iter()
                    .map(|r| &m.text()[r.clone()])
                    .collect();
                for message in &case.messages {
                    let content = message.content.trim();
                    if !content.is_empty() && !case.name.contains("tool") {
                        assert!(
                            user.iter().any(|u| u.trim() == content),
                            "{}: {content:?} not marked in {user:?}",
                            case.name
                        );
                    }
                }
                marked += 1;
            }
            Err(e) => {
                let thinks = case.messages.iter().any(|m| {
                    m.role == "assistant"
                        && (m.content.contains("<think>") || m.content.contains("</think>"))
                });
                assert!(
                    thinks || !case.messages.iter().all(|m| m.extra.is_empty()),
                    "{}: {e}",
                    case.name
                );
            }
        }
    }
    assert!(marked >= 40, "only {marked} cases could be marked");
}
