//! The chat flags shared by `generate` (and the chat and serve commands): which template,
//! which conversation, which template arguments.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use diffulex_edge::text::{ChatMessage, ChatOptions, ChatTemplate};

use crate::load::check_file;

/// Largest `--messages` file read (the prompt's own byte bound applies after).
const MAX_MESSAGES_BYTES: u64 = 64 << 20;

/// How the prompt becomes a conversation.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Wrap the prompt in the model's chat template as one user turn (the template embedded in
    /// the .pte, else tokenizer_config.json or chat_template.jinja beside the tokenizer).
    #[arg(long)]
    pub chat: bool,
    /// A system message before the prompt (implies --chat).
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// The conversation as a JSON message list (`[{"role": "user", "content": "…"}, …]`, or an
    /// OpenAI request body with "messages"), instead of --prompt (implies --chat).
    #[arg(long, value_name = "FILE.json", conflicts_with = "prompt")]
    pub messages: Option<PathBuf>,
    #[command(flatten)]
    pub template: TemplateArgs,
}

/// Which chat template, with which arguments (`generate`, `chat`, `serve`).
#[derive(Debug, Clone, Args)]
pub struct TemplateArgs {
    /// Keyword arguments for the chat template, as a JSON object, e.g.
    /// '{"enable_thinking": false}' (with generate: implies --chat).
    #[arg(long, value_name = "JSON")]
    pub chat_template_kwargs: Option<String>,
    /// Use this chat template instead of the model's: a .jinja file or a tokenizer_config.json
    /// (with generate: implies --chat).
    #[arg(long, value_name = "FILE")]
    pub chat_template: Option<PathBuf>,
}

impl TemplateArgs {
    /// The template options from `--chat-template-kwargs`.
    pub fn options(&self) -> Result<ChatOptions> {
        let options = ChatOptions::default();
        Ok(match &self.chat_template_kwargs {
            Some(json) => options
                .with_kwargs_json(json)
                .context("bad --chat-template-kwargs")?,
            None => options,
        })
    }

    /// The chat template: `--chat-template`, else `embedded` (the model's own), else the files
    /// in `tokenizer_dir`.
    pub fn template(
        &self,
        embedded: Option<ChatTemplate>,
        tokenizer_dir: &Path,
    ) -> Result<ChatTemplate> {
        resolve_template(self.chat_template.as_deref(), embedded, tokenizer_dir)
    }
}

impl ChatArgs {
    /// Whether the prompt goes through a chat template.
    pub fn enabled(&self) -> bool {
        self.chat
            || self.system.is_some()
            || self.messages.is_some()
            || self.template.chat_template_kwargs.is_some()
            || self.template.chat_template.is_some()
    }

    /// The conversation: `--messages`, or `--system` and the prompt as the user's turn.
    pub fn conversation(&self, prompt: Option<String>) -> Result<Vec<ChatMessage>> {
        let mut messages = match (&self.messages, prompt) {
            (Some(path), _) => {
                check_file("messages file", path, "pass a JSON file of messages")?;
                let list = ChatMessage::read_list(path, MAX_MESSAGES_BYTES)?;
                if list.is_empty() {
                    bail!("{path:?} holds no messages");
                }
                list
            }
            (None, Some(text)) => vec![ChatMessage::user(text)],
            (None, None) => bail!(
                "no prompt: pass --prompt TEXT, --messages FILE.json or pipe the prompt on stdin"
            ),
        };
        if let Some(system) = &self.system {
            if messages.first().is_some_and(|m| m.role == "system") {
                bail!("--system and a system message in --messages: keep one of them");
            }
            messages.insert(0, ChatMessage::system(system.clone()));
        }
        Ok(messages)
    }
}

/// The chat template to use: `override_file` (`--chat-template`), else `embedded` (the one in
/// the `.pte`), else the files in `tokenizer_dir` as Hugging Face finds them.
fn resolve_template(
    override_file: Option<&Path>,
    embedded: Option<ChatTemplate>,
    tokenizer_dir: &Path,
) -> Result<ChatTemplate> {
    if let Some(path) = override_file {
        check_file(
            "chat template",
            path,
            "pass a .jinja file or a tokenizer_config.json",
        )?;
        return Ok(ChatTemplate::from_file(path)?);
    }
    if let Some(template) = embedded {
        return Ok(template);
    }
    ChatTemplate::from_dir(tokenizer_dir).with_context(|| {
        format!(
            "no chat template: none is embedded in the model and none is beside the tokenizer \
             in {tokenizer_dir:?}; pass --chat-template FILE"
        )
    })
}
