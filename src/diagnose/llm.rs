//! LLM calls for the diagnosis narrative: OpenAI-compatible Chat Completions
//! (`POST {base_url}/chat/completions`, bearer key — also vLLM, llama.cpp
//! server, LM Studio and gateways) and Ollama (`/api/chat` or, as pypss
//! configures it, `/api/generate`, `stream: false`). Timeouts, bounded
//! retries with exponential backoff on 429 and 5xx, and errors that say what
//! to do. The API key is sent only in the `Authorization` header and is
//! redacted from every message this module returns.

use std::time::Duration;

use serde_json::{json, Value};

/// Which API to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// No LLM: the rule-based diagnosis only.
    None,
    /// OpenAI-compatible Chat Completions.
    Openai,
    /// Ollama's chat or generate API.
    Ollama,
}

/// How to call the LLM.
#[derive(Clone)]
pub struct LlmParams {
    pub provider: Provider,
    pub model: String,
    /// OpenAI: the API root (`https://api.openai.com/v1`); Ollama: the server
    /// (`http://localhost:11434`) or a full `/api/chat` or `/api/generate` URL.
    pub base_url: String,
    pub api_key: Option<String>,
    /// Per attempt.
    pub timeout: Duration,
    /// Over all attempts: no attempt starts after it, none runs past it.
    pub deadline: Duration,
    pub max_tokens: u32,
    /// Retries after the first attempt (429, 5xx, timeouts, refused connections).
    pub retries: u32,
    /// First backoff; doubled after each retry.
    pub backoff: Duration,
}

impl LlmParams {
    /// Parameters for `provider`, the configuration's defaults filling what
    /// is not given (model, URL), with its timeout and token limit.
    pub fn from_config(
        provider: Provider,
        model: Option<String>,
        base_url: Option<String>,
        api_key: Option<String>,
        cfg: &crate::config::Config,
    ) -> LlmParams {
        let ollama = provider == Provider::Ollama;
        LlmParams {
            provider,
            model: model.unwrap_or_else(|| if ollama { cfg.llm_ollama_model() } else { cfg.llm_openai_model() }),
            base_url: base_url.unwrap_or_else(|| if ollama { cfg.llm_ollama_url() } else { cfg.llm_base_url() }),
            api_key,
            timeout: Duration::from_secs_f64(cfg.llm_timeout_seconds()),
            deadline: Duration::from_secs_f64(cfg.llm_deadline_seconds()),
            max_tokens: cfg.llm_max_tokens(),
            retries: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

impl std::fmt::Debug for LlmParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmParams")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Why the LLM part failed (the report is complete without it).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("{url}: 401 Unauthorized — the API key was refused; set OPENAI_API_KEY or --api-key to a valid key")]
    Unauthorized { url: String },
    #[error("{url}: 404 Not Found — check --base-url (it should end before /chat/completions) and that model '{model}' exists")]
    NotFound { url: String, model: String },
    #[error("{url}: HTTP {status} after {attempts} attempt(s): {body}")]
    Status { url: String, status: u16, attempts: u32, body: String },
    #[error("{url}: the answer is not the JSON this API returns: {detail}")]
    BadJson { url: String, detail: String },
    #[error("{detail} ({attempts} attempt(s) to {url})")]
    Transport { url: String, detail: String, attempts: u32 },
    #[error("no API key: set OPENAI_API_KEY or pass --api-key (or use --provider ollama / none)")]
    NoKey,
}

/// The narrative and which model wrote it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LlmReply {
    pub provider: Provider,
    pub model: String,
    pub text: String,
    pub attempts: u32,
}

/// Seconds as a person writes them: `90`, `1.5`.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

fn redact(s: &str, key: Option<&str>) -> String {
    match key {
        Some(k) if !k.is_empty() => s.replace(k, "[redacted]"),
        _ => s.to_string(),
    }
}

/// Asks for a completion of `system` + `prompt`.
pub fn complete(p: &LlmParams, system: &str, prompt: &str) -> Result<LlmReply, LlmError> {
    let key = p.api_key.as_deref();
    let base = p.base_url.trim_end_matches('/');
    let (url, body) = match p.provider {
        Provider::None => unreachable!("callers do not call the LLM with --provider none"),
        Provider::Openai => {
            if key.is_none_or(str::is_empty) {
                return Err(LlmError::NoKey);
            }
            (
                format!("{base}/chat/completions"),
                json!({ "model": p.model, "max_tokens": p.max_tokens, "messages": [
                    { "role": "system", "content": system }, { "role": "user", "content": prompt } ] }),
            )
        }
        Provider::Ollama => {
            if base.ends_with("/api/generate") {
                (
                    base.to_string(),
                    json!({ "model": p.model, "prompt": format!("{system}\n\n{prompt}"), "stream": false,
                        "options": { "num_predict": p.max_tokens } }),
                )
            } else {
                let url = if base.ends_with("/api/chat") { base.to_string() } else { format!("{base}/api/chat") };
                (
                    url,
                    json!({ "model": p.model, "stream": false, "options": { "num_predict": p.max_tokens },
                        "messages": [ { "role": "system", "content": system }, { "role": "user", "content": prompt } ] }),
                )
            }
        }
    };
    let client = reqwest::blocking::Client::builder()
        .user_agent(concat!("pss/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LlmError::Transport { url: url.clone(), detail: e.to_string(), attempts: 0 })?;
    let mut attempt = 0u32;
    let mut wait = p.backoff;
    let started = std::time::Instant::now();
    let left = || p.deadline.saturating_sub(started.elapsed());
    loop {
        attempt += 1;
        // The deadline clips the last attempt's timeout.
        let (timeout, clipped) = if left() < p.timeout { (left(), true) } else { (p.timeout, false) };
        let mut req = client.post(&url).json(&body).timeout(timeout);
        if let (Provider::Openai, Some(k)) = (p.provider, key) {
            req = req.bearer_auth(k);
        }
        // No retry when none is left, or when it could not start before the deadline.
        let retry_or = |err: LlmError, attempt: u32| {
            let in_time = left() > wait;
            match (attempt <= p.retries, in_time, err) {
                (true, true, _) => None,
                (true, false, LlmError::Transport { url, attempts, detail }) if detail.contains("no answer") => {
                    Some(LlmError::Transport {
                        url,
                        attempts,
                        detail: format!("no answer within {} s (llm_deadline_seconds)", secs(p.deadline)),
                    })
                }
                (_, _, err) => Some(err),
            }
        };
        match req.send() {
            Err(e) => {
                let detail = if e.is_timeout() && clipped {
                    format!("no answer within {} s (llm_deadline_seconds)", secs(p.deadline))
                } else if e.is_timeout() {
                    format!("no answer within {} s (llm_timeout_seconds)", secs(p.timeout))
                } else if e.is_connect() {
                    "connection refused or unreachable".to_string()
                } else {
                    redact(&e.to_string(), key)
                };
                if let Some(err) =
                    retry_or(LlmError::Transport { url: url.clone(), detail, attempts: attempt }, attempt)
                {
                    return Err(err);
                }
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().unwrap_or_default();
                match status {
                    200..=299 => return parse(p, &url, &text, attempt),
                    401 | 403 => return Err(LlmError::Unauthorized { url }),
                    404 => return Err(LlmError::NotFound { url, model: p.model.clone() }),
                    429 | 500..=599 => {
                        let err = LlmError::Status {
                            url: url.clone(),
                            status,
                            attempts: attempt,
                            body: redact(&text.chars().take(300).collect::<String>(), key),
                        };
                        if let Some(err) = retry_or(err, attempt) {
                            return Err(err);
                        }
                    }
                    _ => {
                        return Err(LlmError::Status {
                            url,
                            status,
                            attempts: attempt,
                            body: redact(&text.chars().take(300).collect::<String>(), key),
                        })
                    }
                }
            }
        }
        std::thread::sleep(wait);
        wait *= 2;
    }
}

fn parse(p: &LlmParams, url: &str, text: &str, attempts: u32) -> Result<LlmReply, LlmError> {
    let bad = |detail: String| LlmError::BadJson { url: url.to_string(), detail };
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("{e}")))?;
    let content = match p.provider {
        Provider::Openai => v.pointer("/choices/0/message/content"),
        _ => v.pointer("/message/content").or_else(|| v.get("response")),
    };
    let content = content
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no completion text in it (expected choices[0].message.content or response)".into()))?;
    if content.trim().is_empty() {
        return Err(bad("the completion is empty".into()));
    }
    let model = v.get("model").and_then(Value::as_str).unwrap_or(&p.model).to_string();
    Ok(LlmReply { provider: p.provider, model, text: content.trim().to_string(), attempts })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An endpoint that accepts connections and never answers: the deadline
    /// ends the call, however many retries are left.
    #[test]
    fn a_stalled_endpoint_ends_at_the_deadline() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in listener.incoming().flatten() {
                held.push(c); // read nothing, answer nothing
            }
        });
        let p = LlmParams {
            provider: Provider::Openai,
            model: "m".into(),
            base_url: format!("http://{addr}/v1"),
            api_key: Some("k".into()),
            timeout: Duration::from_millis(700),
            deadline: Duration::from_millis(1500),
            max_tokens: 10,
            retries: 10,
            backoff: Duration::from_millis(50),
        };
        let t0 = std::time::Instant::now();
        let e = complete(&p, "s", "p").unwrap_err().to_string();
        let took = t0.elapsed();
        assert!(e.starts_with("no answer within 1.5 s (llm_deadline_seconds)"), "{e}");
        assert!(took < Duration::from_secs(5), "the deadline did not end it: {took:?}");
    }
}
