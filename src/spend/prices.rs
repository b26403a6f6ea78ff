//! What a model costs: a table of prices in USD per million tokens, and the cost of one
//! request's usage at those prices.
//!
//! The table is looked up by model name in this order, first hit wins:
//!
//! 1. the configured `prices:` (exact names, then the most specific glob), then the built-in
//!    table (`conf/prices.yaml`, compiled in), the same way;
//! 2. in each, a dated snapshot is also priced by its undated name: `gpt-4o-2024-08-06` by
//!    `gpt-4o`, `claude-sonnet-4-5-20250929` by `claude-sonnet-4-5` — unless the snapshot has
//!    an entry of its own (`gpt-4o-2024-05-13` does: it was priced differently).
//!
//! "Most specific glob" is the one with the most characters that are not wildcards, so
//! `gpt-4o-mini*` wins over `gpt-4o*` for `gpt-4o-mini-tts`; on a tie, file order decides.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use serde::Deserialize;

use crate::config::ModelPattern;
use crate::wire::usage::Usage;

/// One model's prices, in USD per million tokens, as written in a price table.
///
/// `input` and `output` are required; every other price defaults to the one it refines
/// (`cached_input`, `cache_write`, `audio_input` and `image_input` to `input`; `reasoning`
/// and `audio_output` to `output`), which never bills less than the provider does.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Input (prompt) tokens not otherwise priced.
    pub input: f64,
    /// Output (completion) tokens not otherwise priced.
    pub output: f64,
    /// Input tokens read from the provider's prompt cache (OpenAI `cached_tokens`, Anthropic
    /// `cache_read_input_tokens`).
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Input tokens written to the prompt cache (Anthropic `cache_creation_input_tokens`).
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Reasoning tokens, where a provider prices them apart from other output.
    #[serde(default)]
    pub reasoning: Option<f64>,
    /// Audio input tokens.
    #[serde(default)]
    pub audio_input: Option<f64>,
    /// Audio output tokens.
    #[serde(default)]
    pub audio_output: Option<f64>,
    /// Image input tokens.
    #[serde(default)]
    pub image_input: Option<f64>,
    /// The most output tokens the model produces in one answer: what a request that sets no
    /// `max_tokens` reserves against a USD budget.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
}

/// Output tokens reserved against a USD budget for a request that sets no output cap, on a
/// model whose price gives no `max_output_tokens`.
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 4_096;

impl ModelPrice {
    /// Every price of the entry with its field name, for validation.
    pub fn fields(&self) -> [(&'static str, Option<f64>); 8] {
        [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cached_input", self.cached_input),
            ("cache_write", self.cache_write),
            ("reasoning", self.reasoning),
            ("audio_input", self.audio_input),
            ("audio_output", self.audio_output),
            ("image_input", self.image_input),
        ]
    }

    /// What `usage` costs at these prices, in USD.
    ///
    /// Tokens are split into the kinds the usage reports, each a part of the prompt or of the
    /// completion (as OpenAI reports them; Anthropic's usage is normalized to that when read):
    /// cache reads, cache writes, audio and image input, the rest of the prompt; reasoning,
    /// audio output, the rest of the completion. A kind without a price of its own stays in
    /// the rest. Details larger than their total are capped at it.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let mut prompt = usage.prompt;
        let mut part = |n: u64, price: Option<f64>| -> (u64, f64) {
            match price {
                Some(p) => {
                    let n = n.min(prompt);
                    prompt -= n;
                    (n, p)
                }
                None => (0, 0.0),
            }
        };
        let inputs = [
            part(usage.cache_read, self.cached_input.or(Some(self.input))),
            part(usage.cache_write, self.cache_write.or(Some(self.input))),
            part(usage.audio_input, self.audio_input),
            part(usage.image_input, self.image_input),
        ];
        let mut completion = usage.completion;
        let mut out = |n: u64, price: Option<f64>| -> (u64, f64) {
            match price {
                Some(p) => {
                    let n = n.min(completion);
                    completion -= n;
                    (n, p)
                }
                None => (0, 0.0),
            }
        };
        let outputs = [
            out(usage.reasoning, self.reasoning),
            out(usage.audio_output, self.audio_output),
        ];
        let per_million: f64 = inputs
            .iter()
            .chain(&outputs)
            .map(|&(n, p)| n as f64 * p)
            .sum::<f64>()
            + prompt as f64 * self.input
            + completion as f64 * self.output;
        per_million / 1_000_000.0
    }

    /// The most a request can cost: `prompt` tokens at the dearest input price and
    /// `max_output` tokens at the dearest output price, in USD.
    pub fn worst_case(&self, prompt: u64, max_output: u64) -> f64 {
        let input = [
            Some(self.input),
            self.cached_input,
            self.cache_write,
            self.audio_input,
            self.image_input,
        ]
        .into_iter()
        .flatten()
        .fold(0.0, f64::max);
        let output = [Some(self.output), self.reasoning, self.audio_output]
            .into_iter()
            .flatten()
            .fold(0.0, f64::max);
        (prompt as f64 * input + max_output as f64 * output) / 1_000_000.0
    }

    /// The output cap to reserve for when the request states none.
    pub fn output_cap(&self) -> u64 {
        self.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS)
    }
}

/// One entry of a table: a model name or glob and its prices.
#[derive(Debug, Clone)]
pub struct PriceEntry {
    /// The name or glob as written.
    pub pattern: ModelPattern,
    /// Its prices.
    pub price: ModelPrice,
    /// Characters that are not wildcards (ranks globs).
    literal: usize,
}

impl PriceEntry {
    /// An entry for `pattern`.
    pub fn new(pattern: ModelPattern, price: ModelPrice) -> Self {
        let literal = pattern
            .pattern
            .chars()
            .filter(|c| !matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | ','))
            .count();
        PriceEntry {
            pattern,
            price,
            literal,
        }
    }
}

/// Where a price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    /// The configuration's `prices:`.
    Configured,
    /// The built-in table.
    BuiltIn,
}

/// A price found for a model.
#[derive(Debug, Clone, Copy)]
pub struct Priced<'a> {
    /// The entry's name or glob, as written.
    pub pattern: &'a str,
    /// The prices.
    pub price: &'a ModelPrice,
    /// Which table.
    pub source: PriceSource,
}

/// The prices in force: the configured entries, then the built-in table.
#[derive(Clone)]
pub struct PriceTable {
    configured: Entries,
    builtin: Arc<BuiltIn>,
}

/// A table's entries, with its exact names hashed (a price is looked up for every answer).
#[derive(Debug, Clone, Default)]
struct Entries {
    list: Vec<PriceEntry>,
    exact: HashMap<String, usize>,
    globs: Vec<usize>,
}

impl Entries {
    fn new(list: Vec<PriceEntry>) -> Self {
        let mut exact = HashMap::new();
        let mut globs = Vec::new();
        for (i, e) in list.iter().enumerate() {
            if e.pattern.is_glob() {
                globs.push(i);
            } else {
                // The first entry of a name wins, as in a search in file order.
                exact.entry(e.pattern.pattern.clone()).or_insert(i);
            }
        }
        Entries { list, exact, globs }
    }

    /// The exact entry for `model`, else the most specific glob that matches it.
    fn find(&self, model: &str) -> Option<&PriceEntry> {
        if let Some(&i) = self.exact.get(model) {
            return Some(&self.list[i]);
        }
        let mut best: Option<&PriceEntry> = None;
        for entry in self.globs.iter().map(|&i| &self.list[i]) {
            if entry.pattern.matches(model) && best.is_none_or(|b| entry.literal > b.literal) {
                best = Some(entry);
            }
        }
        best
    }
}

impl fmt::Debug for PriceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriceTable")
            .field("configured", &self.configured.list.len())
            .field("builtin", &self.builtin.entries.list.len())
            .field("taken", &self.builtin.taken)
            .finish()
    }
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::new(Vec::new())
    }
}

impl PriceTable {
    /// The built-in table extended (and overridden) by `configured` entries.
    pub fn new(configured: Vec<PriceEntry>) -> Self {
        PriceTable {
            configured: Entries::new(configured),
            builtin: Arc::clone(&BUILTIN),
        }
    }

    /// A table of `configured` entries only, without the built-in one (tests).
    pub fn only(configured: Vec<PriceEntry>) -> Self {
        PriceTable {
            configured: Entries::new(configured),
            builtin: Arc::new(BuiltIn {
                taken: String::new(),
                entries: Entries::default(),
            }),
        }
    }

    /// The date the built-in table was taken (`taken:` in `conf/prices.yaml`).
    pub fn builtin_taken(&self) -> &str {
        &self.builtin.taken
    }

    /// Entries in the built-in table.
    pub fn builtin_len(&self) -> usize {
        self.builtin.entries.list.len()
    }

    /// The price of `model`, if either table has one (see the module docs for the order).
    pub fn price(&self, model: &str) -> Option<Priced<'_>> {
        let undated = strip_snapshot_date(model);
        for (entries, source) in [
            (&self.configured, PriceSource::Configured),
            (&self.builtin.entries, PriceSource::BuiltIn),
        ] {
            let found = entries
                .find(model)
                .or_else(|| undated.and_then(|m| entries.find(m)));
            if let Some(entry) = found {
                return Some(Priced {
                    pattern: &entry.pattern.pattern,
                    price: &entry.price,
                    source,
                });
            }
        }
        None
    }

    /// For a route's model glob: whether some model it matches has a price, judged by the
    /// table's own names (an entry written the same way, or one the glob matches) and by the
    /// shortest name the glob matches (`llama3.2:*` → `llama3.2:`, priced by `llama3.2*`).
    /// `veilgate check` uses it; a request's model is priced by [`PriceTable::price`].
    pub fn prices_some_of(&self, glob: &ModelPattern) -> bool {
        let named = self
            .configured
            .list
            .iter()
            .chain(&self.builtin.entries.list)
            .any(|e| e.pattern.pattern == glob.pattern || glob.matches(&e.pattern.pattern));
        let shortest = (!glob.pattern.contains(['[', '{']))
            .then(|| glob.pattern.replace('*', "").replace('?', "a"));
        named || shortest.is_some_and(|name| self.price(&name).is_some())
    }
}

/// `gpt-4o-2024-08-06` → `gpt-4o`, `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`,
/// `claude-3-5-haiku-latest` → `claude-3-5-haiku`; `None` when the name has no such suffix.
pub fn strip_snapshot_date(model: &str) -> Option<&str> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(base) = model.strip_suffix("-latest") {
        return (!base.is_empty()).then_some(base);
    }
    // -YYYYMMDD
    if let Some((base, date)) = model.rsplit_once('-') {
        if date.len() == 8 && digits(date) && !base.is_empty() {
            return Some(base);
        }
    }
    // -YYYY-MM-DD
    let bytes = model.as_bytes();
    if bytes.len() > 11 {
        let (base, date) = model.split_at(model.len() - 11);
        let d = date.as_bytes();
        if d[0] == b'-'
            && d[5] == b'-'
            && d[8] == b'-'
            && digits(&date[1..5])
            && digits(&date[6..8])
            && digits(&date[9..11])
        {
            return Some(base);
        }
    }
    None
}

/// The built-in table, read once from `conf/prices.yaml`.
struct BuiltIn {
    taken: String,
    entries: Entries,
}

/// The text of the built-in table.
pub const BUILTIN_PRICES: &str = include_str!("../../conf/prices.yaml");

static BUILTIN: LazyLock<Arc<BuiltIn>> = LazyLock::new(|| {
    // The file is compiled in and a unit test loads it; should it still fail, prices come
    // only from the configuration, and `veilgate check` says which models have none.
    match crate::config::load_price_file(BUILTIN_PRICES, "conf/prices.yaml (built in)") {
        Ok((taken, entries)) => Arc::new(BuiltIn {
            taken,
            entries: Entries::new(entries),
        }),
        Err(e) => {
            log::error!("the built-in price table is unusable: {e}");
            Arc::new(BuiltIn {
                taken: String::new(),
                entries: Entries::default(),
            })
        }
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: f64) -> ModelPrice {
        ModelPrice {
            input,
            output,
            cached_input: None,
            cache_write: None,
            reasoning: None,
            audio_input: None,
            audio_output: None,
            image_input: None,
            max_output_tokens: None,
        }
    }

    fn entry(p: &str, price: ModelPrice) -> PriceEntry {
        PriceEntry::new(ModelPattern::new(p).unwrap(), price)
    }

    #[test]
    fn a_route_glob_is_priced_when_some_model_it_matches_is() {
        let table = PriceTable::only(vec![
            entry("llama3.2*", price(0.0, 0.0)),
            entry("gpt-4.1", price(2.0, 8.0)),
        ]);
        let priced = |g: &str| table.prices_some_of(&ModelPattern::new(g).unwrap());
        assert!(priced("llama3.2*"), "written the same way");
        assert!(
            priced("llama3.2:*"),
            "its shortest name, llama3.2:, is priced"
        );
        assert!(priced("gpt-4.?"), "matches the exact entry gpt-4.1");
        assert!(priced("*"));
        assert!(!priced("qwen2.5:*"));
        assert!(!priced("mistral-[a-z]*"));
    }

    #[test]
    fn the_builtin_table_loads_and_is_dated() {
        let table = PriceTable::default();
        assert!(table.builtin_len() > 30, "{}", table.builtin_len());
        assert_eq!(table.builtin_taken().len(), 10, "YYYY-MM-DD");
        let p = table.price("gpt-4o").unwrap();
        assert_eq!((p.price.input, p.price.output), (2.5, 10.0));
        assert_eq!(p.source, PriceSource::BuiltIn);
        // A dated snapshot is priced by its name, unless it has its own entry.
        assert_eq!(table.price("gpt-4o-2024-08-06").unwrap().pattern, "gpt-4o");
        assert_eq!(table.price("gpt-4o-2024-05-13").unwrap().price.input, 5.0);
        assert_eq!(
            table.price("claude-sonnet-4-5-20250929").unwrap().pattern,
            "claude-sonnet-4-5"
        );
        assert_eq!(table.price("gpt-4o-mini").unwrap().price.input, 0.15);
        assert!(table.price("my-finetune").is_none());
    }

    #[test]
    fn configured_prices_come_first_and_the_most_specific_glob_wins() {
        let table = PriceTable::new(vec![
            entry("gpt-4o*", price(1.0, 2.0)),
            entry("gpt-4o-mini*", price(0.5, 1.0)),
            entry("llama-*", price(0.0, 0.0)),
        ]);
        let p = table.price("gpt-4o").unwrap();
        assert_eq!((p.pattern, p.source), ("gpt-4o*", PriceSource::Configured));
        assert_eq!(
            table.price("gpt-4o-mini-tts").unwrap().pattern,
            "gpt-4o-mini*"
        );
        assert_eq!(table.price("llama-3-70b").unwrap().price.output, 0.0);
        // Not configured: the built-in table.
        assert_eq!(
            table.price("o3").unwrap().source,
            PriceSource::BuiltIn,
            "o3 is in conf/prices.yaml"
        );
    }

    #[test]
    fn snapshot_dates_are_recognized_only_at_the_end() {
        assert_eq!(strip_snapshot_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(
            strip_snapshot_date("claude-opus-4-1-20250805"),
            Some("claude-opus-4-1")
        );
        assert_eq!(
            strip_snapshot_date("claude-3-5-haiku-latest"),
            Some("claude-3-5-haiku")
        );
        assert_eq!(strip_snapshot_date("gpt-4o"), None);
        assert_eq!(strip_snapshot_date("o3-mini"), None);
        assert_eq!(strip_snapshot_date("-20250805"), None);
        assert_eq!(strip_snapshot_date("x-2024-13-0a"), None);
        assert_eq!(strip_snapshot_date("2024-08-06"), None);
    }

    #[test]
    fn cost_splits_usage_into_priced_kinds() {
        // gpt-4o: 2.50 in, 1.25 cached, 10.00 out.
        let p = ModelPrice {
            cached_input: Some(1.25),
            ..price(2.5, 10.0)
        };
        let usage = Usage {
            prompt: 2_000,
            completion: 300,
            cache_read: 1_536,
            ..Usage::default()
        };
        // 464 × 2.50 + 1536 × 1.25 + 300 × 10 = 1160 + 1920 + 3000 = 6080 per million.
        assert!(
            (p.cost(&usage) - 0.006_08).abs() < 1e-12,
            "{}",
            p.cost(&usage)
        );

        // Claude Sonnet: 3 in, 0.30 cache read, 3.75 cache write, 15 out.
        let sonnet = ModelPrice {
            cached_input: Some(0.30),
            cache_write: Some(3.75),
            ..price(3.0, 15.0)
        };
        let usage = Usage {
            prompt: 10 + 1_000 + 2_000,
            completion: 50,
            cache_read: 1_000,
            cache_write: 2_000,
            ..Usage::default()
        };
        // 10 × 3 + 1000 × 0.30 + 2000 × 3.75 + 50 × 15 = 30 + 300 + 7500 + 750 = 8580.
        assert!((sonnet.cost(&usage) - 0.008_58).abs() < 1e-12);

        // Without a cached price, cached tokens cost full input price.
        let plain = price(2.0, 8.0);
        let usage = Usage {
            prompt: 1_000,
            completion: 0,
            cache_read: 600,
            ..Usage::default()
        };
        assert!((plain.cost(&usage) - 0.002).abs() < 1e-12);

        // Reasoning and audio priced apart only when they have a price; details are capped.
        let audio = ModelPrice {
            audio_input: Some(40.0),
            audio_output: Some(80.0),
            ..price(2.5, 10.0)
        };
        let usage = Usage {
            prompt: 100,
            completion: 100,
            audio_input: 500,
            audio_output: 40,
            reasoning: 30,
            ..Usage::default()
        };
        // 100 × 40 (capped at the prompt) + 40 × 80 + 60 × 10 = 4000 + 3200 + 600 = 7800.
        assert!((audio.cost(&usage) - 0.0078).abs() < 1e-12);
    }

    #[test]
    fn the_worst_case_uses_the_dearest_prices() {
        let p = ModelPrice {
            cache_write: Some(3.75),
            cached_input: Some(0.3),
            max_output_tokens: Some(64_000),
            ..price(3.0, 15.0)
        };
        assert!((p.worst_case(1_000, 100) - (3_750.0 + 1_500.0) / 1e6).abs() < 1e-15);
        assert_eq!(p.output_cap(), 64_000);
        assert_eq!(price(1.0, 1.0).output_cap(), DEFAULT_MAX_OUTPUT_TOKENS);
    }
}
