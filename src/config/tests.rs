//! End-to-end tests of `load_str` / `load_file`: whole files in, a `Config` or exact messages out.

use std::time::Duration;

use super::*;
use crate::redact::{Action, DetectorActions};

/// The example config from the product issue, verbatim.
const EXAMPLE: &str = r#"environment: ${VEILGATE_ENV:-development}   # ${VAR} and ${VAR:-default} are expanded in every string
listen: 0.0.0.0:8080
admin: 127.0.0.1:9090                        # optional
max_body_bytes: 33554432                     # optional; default 32 MiB
upstreams:
  openai:
    url: https://api.openai.com/v1           # an SDK-style base URL: /v1/<rest> is forwarded to <url>/<rest>
    api_key: ${OPENAI_API_KEY:-}             # sent as "Authorization: Bearer …"; empty or absent => None
  gemini:
    url: https://generativelanguage.googleapis.com/v1beta/openai
    api_key: ${GEMINI_API_KEY:-}
  local:
    url: http://127.0.0.1:11434/v1
routes:                                      # first match wins
  - models: [gpt-4o, gpt-4o-mini, "gpt-4.1*"] # exact names or * globs on the request's "model"
    upstream: openai
  - models: [fast]
    upstream: openai
    model: gpt-4o-mini                       # alias: the upstream sees this name, the client keeps "fast"
  - models: [gemini-2.5-flash]
    upstream: gemini
  - paths: [/v1/files, /v1/batches]          # a route may match path prefixes instead of models
    upstream: openai
  - models: ["*"]
    upstream: local
"#;

/// A minimal valid head that tests append routes or upstream keys to.
const HEAD: &str = "environment: test\nlisten: 0.0.0.0:8080\nupstreams:\n  openai:\n    url: https://api.openai.com/v1\n";

fn no_env(_: &str) -> Option<String> {
    None
}

fn fake_env(name: &str) -> Option<String> {
    match name {
        "VEILGATE_ENV" => Some("production".into()),
        "OPENAI_API_KEY" => Some("sk-openai-SECRET".into()),
        "EMPTY" => Some(String::new()),
        "MAX" => Some("2048".into()),
        "PORT" => Some("9999".into()),
        "HOST" => Some("example.com".into()),
        "NOT_A_NUMBER" => Some("SECRET-abc".into()),
        "BAD_URL" => Some("https://user:SECRET@host/v1".into()),
        _ => None,
    }
}

fn load(text: &str) -> Config {
    load_str(text, "t.yaml", &fake_env).unwrap_or_else(|e| panic!("should load:\n{e}"))
}

/// Every problem, rendered as ops see them.
fn problems(text: &str) -> Vec<String> {
    match load_str(text, "t.yaml", &fake_env) {
        Ok(config) => panic!("should fail, loaded {config:?}"),
        Err(err) => {
            let rendered = err.to_string();
            assert!(!rendered.contains("SECRET"), "a secret leaked:\n{rendered}");
            err.problems().iter().map(ToString::to_string).collect()
        }
    }
}

fn route_names(config: &Config) -> Vec<&str> {
    config.routes.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn the_example_loads_with_an_environment() {
    let config = load(EXAMPLE);
    assert_eq!(config.environment, "production");
    assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(
        config.admin.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9090")
    );
    assert_eq!(config.max_body_bytes, 32 * 1024 * 1024);
    assert_eq!(
        config.upstreams.keys().collect::<Vec<_>>(),
        ["gemini", "local", "openai"]
    );

    let openai = config
        .upstream("openai")
        .unwrap_or_else(|| panic!("no openai"));
    assert_eq!(openai.name, "openai");
    assert!(openai.tls);
    assert_eq!(
        (openai.host.as_str(), openai.port, openai.base_path.as_str()),
        ("api.openai.com", 443, "/v1")
    );
    assert_eq!(openai.api_key.as_deref(), Some("sk-openai-SECRET"));
    assert_eq!(
        openai.path_for(None, "chat/completions", None),
        "/v1/chat/completions"
    );
    assert_eq!(openai.authority(), "api.openai.com");
    assert_eq!(openai.connect_timeout, Duration::from_secs(5));
    assert_eq!(openai.timeout, Duration::from_secs(300));
    assert_eq!(openai.idle_timeout, Duration::from_secs(300));

    let gemini = config
        .upstream("gemini")
        .unwrap_or_else(|| panic!("no gemini"));
    assert_eq!(gemini.base_path, "/v1beta/openai");
    assert_eq!(gemini.api_key, None, "unset with an empty default is None");

    let local = config
        .upstream("local")
        .unwrap_or_else(|| panic!("no local"));
    assert!(!local.tls);
    assert_eq!((local.host.as_str(), local.port), ("127.0.0.1", 11434));
    assert_eq!(local.authority(), "127.0.0.1:11434");
    assert_eq!(local.api_key, None, "absent is None");

    assert_eq!(
        route_names(&config),
        ["gpt-4o", "fast", "gemini-2.5-flash", "/v1/files", "*"]
    );
    assert_eq!(config.routes[1].model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(config.routes[0].model, None);
    assert!(
        matches!(&config.routes[3].matcher, RouteMatch::Paths(p) if p == &["/v1/files", "/v1/batches"])
    );

    let by_model = |m: &str| {
        config
            .route_for_model(m)
            .map(|(r, p)| (r.targets[0].upstream.as_str(), p.pattern.as_str()))
    };
    assert_eq!(by_model("gpt-4o"), Some(("openai", "gpt-4o")));
    assert_eq!(by_model("gpt-4.1-mini"), Some(("openai", "gpt-4.1*")));
    assert_eq!(by_model("fast"), Some(("openai", "fast")));
    assert_eq!(
        by_model("gemini-2.5-flash"),
        Some(("gemini", "gemini-2.5-flash"))
    );
    assert_eq!(by_model("llama3.2"), Some(("local", "*")));
    assert_eq!(
        config
            .route_for_path("/v1/batches/b_1")
            .map(|r| r.targets[0].upstream.as_str()),
        Some("openai")
    );
    assert!(config.route_for_path("/v1/chat/completions").is_none());
    assert_eq!(
        config.model_ids(),
        ["gpt-4o", "gpt-4o-mini", "fast", "gemini-2.5-flash"]
    );
    assert!(
        !format!("{config:?}").contains("SECRET"),
        "Debug must not print api keys"
    );
}

#[test]
fn the_example_loads_with_no_environment_at_all() {
    let config = load_str(EXAMPLE, "t.yaml", &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.environment, "development");
    assert!(config.upstreams.values().all(|u| u.api_key.is_none()));
}

#[test]
fn the_shipped_default_config_loads_without_provider_keys() {
    let text = include_str!("../../conf/veilgate.yaml");
    let config = load_str(text, "conf/veilgate.yaml", &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.upstreams.values().all(|u| u.api_key.is_none()));
    assert_eq!(
        route_names(&config),
        [
            "gpt-4o",
            "fast",
            "gemini-2.5-flash",
            "claude-*",
            "/v1/files",
            "llama3.2"
        ]
    );
    assert_eq!(
        config.upstream("anthropic").map(|u| u.api),
        Some(UpstreamApi::Anthropic)
    );
    assert!(
        config.unpriced_models().is_empty(),
        "{:?}",
        config.unpriced_models()
    );
    assert!(
        config.route_for_model("llama3.2:1b").is_some()
            && config.route_for_model("qwen2.5").is_some(),
        "the local models and their tags are routed"
    );
    assert!(
        config.route_for_model("gpt-4o-mni").is_none()
            && config.route_for_model("llama3").is_none(),
        "no catch-all: a typo matches no route"
    );
}

#[test]
fn expansion_in_values_lists_and_typed_scalars() {
    let text = format!(
        "{HEAD}    api_key: ${{EMPTY}}\n    timeout: ${{T:-2s}}\n  other:\n    url: https://${{HOST}}:${{PORT}}/$$x\n\
         max_body_bytes: ${{MAX:-1024}}\nadmin: ${{ADMIN:-}}\n\
         routes:\n  - models: [\"${{UNSET:-dflt}}\", \"a$$b\", '${{HOST}}-*']\n    upstream: ${{UP:-openai}}\n"
    );
    let config = load(&text);
    let openai = &config.upstreams["openai"];
    assert_eq!(openai.api_key, None, "set but empty is None");
    assert_eq!(openai.timeout, Duration::from_secs(2));
    let other = &config.upstreams["other"];
    assert_eq!(
        (other.host.as_str(), other.port, other.base_path.as_str()),
        ("example.com", 9999, "/$x")
    );
    assert_eq!(
        config.max_body_bytes, 2048,
        "a plain expanded scalar is typed after expansion"
    );
    assert_eq!(config.admin, None, "an empty optional address is absent");
    assert_eq!(config.routes[0].targets[0].upstream, "openai");
    assert_eq!(config.model_ids(), ["dflt", "a$b"]);
    assert!(config.route_for_model("example.com-large").is_some());
}

#[test]
fn an_expanded_default_is_typed_too() {
    let text = format!(
        "{HEAD}max_body_bytes: ${{UNSET:-1024}}\nroutes: [{{models: [x], upstream: openai}}]\n"
    );
    assert_eq!(load(&text).max_body_bytes, 1024);
}

#[test]
fn unset_variables_are_reported_at_their_scalar() {
    let text = format!(
        "{HEAD}    api_key: ${{CHECKOUT_WEB_KEY}}\nroutes:\n  - models: [a, \"x-${{M}}\"]\n    upstream: openai\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:6:14: upstreams.openai.api_key: ${CHECKOUT_WEB_KEY} is not set and has no default",
            "t.yaml:8:17: routes[0].models[1]: ${M} is not set and has no default",
        ]
    );
}

#[test]
fn a_failed_expansion_is_reported_once() {
    // `listen` and `upstream` fail to expand: no second message about an empty or unknown value.
    let text = "environment: test\nlisten: ${LISTEN}\nupstreams:\n  a: {url: 'http://h'}\n\
                routes: [{models: [x], upstream: '${UP}'}]\n";
    assert_eq!(
        problems(text),
        [
            "t.yaml:2:9: listen: ${LISTEN} is not set and has no default",
            "t.yaml:5:34: routes[0].upstream: ${UP} is not set and has no default",
        ]
    );
}

#[test]
fn the_unknown_upstream_message_from_the_issue() {
    let text = "environment: test\nlisten: 0.0.0.0:8080\nupstreams:\n  openai:\n    url: https://api.openai.com/v1\n  \
                gemini:\n    url: https://generativelanguage.googleapis.com/v1beta/openai\n  local:\n    \
                url: http://127.0.0.1:11434/v1\nroutes:\n  - models: [gpt-4o]\n    upstream: openai\n  \
                - models: [fast]\n    upstream: opnai\n";
    let all = match load_str(text, "conf/veilgate.yaml", &no_env) {
        Err(err) => err.to_string(),
        Ok(_) => panic!("should fail"),
    };
    assert_eq!(
        all,
        "conf/veilgate.yaml:14:15: routes[1].upstream: unknown upstream \"opnai\"; \
         defined upstreams: gemini, local, openai; did you mean \"openai\"?"
    );
}

#[test]
fn four_different_problems_are_all_reported() {
    let text = "environment: test\n\
                listen: 0.0.0.0:8080\n\
                max_body_bytes: lots\n\
                upstreams:\n  \
                openai:\n    \
                url: https://api.openai.com/v1\n    \
                api_key: ${OPENAI_KEY_TYPO}\n\
                routes:\n  \
                - models: [gpt-4o]\n    \
                upstream: opnai\n  \
                - models: [x]\n    \
                upstrem: openai\n";
    // The misspelt `upstrem` is not also reported as a missing `upstream`.
    assert_eq!(
        problems(text),
        [
            "t.yaml:3:17: max_body_bytes: expected an integer, found \"lots\"",
            "t.yaml:7:14: upstreams.openai.api_key: ${OPENAI_KEY_TYPO} is not set and has no default",
            "t.yaml:10:15: routes[0].upstream: unknown upstream \"opnai\"; defined upstreams: openai; \
             did you mean \"openai\"?",
            "t.yaml:12:5: routes[1].upstrem: unknown key \"upstrem\" (did you mean \"upstream\"?); \
             expected one of: models, paths, upstream, upstreams, fallbacks, retry_on, model, name, environment, limits, redaction, inspect",
        ]
    );
}

#[test]
fn invalid_globs_are_reported_at_the_pattern() {
    let text = format!(
        "{HEAD}routes:\n  - models: [ok, \"gpt-[\", \"{{a,b\"]\n    upstream: openai\n  - {{models: [x], upstream: opnai}}\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:7:18: routes[0].models[1]: invalid glob \"gpt-[\": unclosed character class; missing ']'",
            "t.yaml:7:27: routes[0].models[2]: invalid glob \"{a,b\": unclosed alternate group; missing '}' \
             (maybe escape '{' with '[{]'?)",
            "t.yaml:9:29: routes[1].upstream: unknown upstream \"opnai\"; defined upstreams: openai; did you mean \"openai\"?",
        ]
    );
}

#[test]
fn unknown_keys_at_every_level() {
    let text = format!(
        "{HEAD}    timout: 5s\nlisten_addr: x\nroutes:\n  - models: [x]\n    upstream: openai\n    nmae: chat\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:6:5: upstreams.openai.timout: unknown key \"timout\" (did you mean \"timeout\"?); \
             expected one of: url, api_key, connect_timeout, timeout, idle_timeout, auth_header, api, query, health_check, owned_by",
            "t.yaml:7:1: listen_addr: unknown key \"listen_addr\"; \
             expected one of: environment, listen, admin, max_body_bytes, max_buffered_bytes, shutdown_grace, client_timeout, upstreams, routes, keys, rate_limit, telemetry, redaction, prices",
            "t.yaml:11:5: routes[0].nmae: unknown key \"nmae\" (did you mean \"name\"?); \
             expected one of: models, paths, upstream, upstreams, fallbacks, retry_on, model, name, environment, limits, redaction, inspect",
        ]
    );
}

#[test]
fn wrong_types_and_quoted_scalars() {
    let text = format!(
        "{HEAD}max_body_bytes: \"1024\"\nadmin: [127.0.0.1]\nroutes:\n  - models: gpt-4o\n    upstream: openai\n  - x\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:6:17: max_body_bytes: expected an integer, found the string \"1024\" (remove the quotes)",
            "t.yaml:7:8: admin: expected a string, found a list",
            "t.yaml:9:13: routes[0].models: expected a list (like [a, b]), found \"gpt-4o\"",
            "t.yaml:11:5: routes[1]: expected a mapping with keys models, paths, upstream, upstreams, fallbacks, retry_on, model, name, environment, limits, redaction, inspect, found \"x\"",
        ]
    );
}

#[test]
fn expanded_values_are_named_by_their_source_in_messages() {
    let text = format!(
        "{HEAD}    url: ${{BAD_URL}}\nmax_body_bytes: ${{NOT_A_NUMBER}}\nroutes: [{{models: [x], upstream: openai}}]\n"
    );
    // `url` is a duplicate key here too: the second is reported, the first one is used.
    assert_eq!(
        problems(&text),
        [
            "t.yaml:6:5: duplicate key \"url\" (first defined at line 5); remove one of them",
            "t.yaml:7:17: max_body_bytes: expected an integer, found the expansion of \"${NOT_A_NUMBER}\"",
        ]
    );
    let text = format!("{HEAD}    api_key: \"sk-a\\n\"\n  b:\n    url: ${{BAD_URL}}\nroutes: [{{models: [x], upstream: openai}}]\n");
    assert_eq!(
        problems(&text),
        [
            "t.yaml:6:14: upstreams.openai.api_key: contains spaces, control or non-ASCII characters \
             (a trailing newline from a secrets file?); the value is not shown",
            "t.yaml:8:10: upstreams.b.url: user info (user:password@) is not allowed in an upstream url; set api_key instead",
        ]
    );
}

#[test]
fn missing_and_empty_required_values() {
    assert_eq!(
        problems("environment: ''\nupstreams: {}\nroutes: []\n"),
        [
            "t.yaml:1:1: listen: missing required key `listen`; set the address to serve on, like 0.0.0.0:8080",
            "t.yaml:1:14: environment: is empty; set a label such as production or development",
            "t.yaml:2:12: upstreams: is empty; define at least one, like `openai: {url: https://api.openai.com/v1}`",
            "t.yaml:3:9: routes: is empty; add at least one route, like `- {models: [\"*\"], upstream: openai}`",
        ]
    );
    assert_eq!(
        problems("environment: ${EMPTY:-}\nlisten: 0.0.0.0:1\nupstreams:\n  a: {}\nroutes:\n"),
        [
            "t.yaml:1:14: environment: is empty (the expansion of \"${EMPTY:-}\"); set a label such as production or development",
            "t.yaml:4:6: upstreams.a.url: missing required key `url`; set the API's base url, like https://api.openai.com/v1",
            "t.yaml:5:7: routes: is empty; add at least one route, like `- {models: [\"*\"], upstream: openai}`",
        ]
    );
}

#[test]
fn route_shape_problems() {
    let text = format!(
        "{HEAD}routes:\n\
         \x20 - {{models: [a], paths: [/v1/files], upstream: openai}}\n\
         \x20 - {{upstream: openai}}\n\
         \x20 - {{paths: [v1/files, /v1/x?y], upstream: openai, model: m}}\n\
         \x20 - {{models: [], upstream: openai}}\n\
         \x20 - {{models: [b], upstream: openai, model: '', name: ''}}\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:7:26: routes[0].paths: a route matches either models: or paths:, not both; split it into two routes",
            "t.yaml:8:5: routes[1]: a route needs models: (model names or globs) or paths: (path prefixes)",
            "t.yaml:9:14: routes[2].paths[0]: must start with /, like /v1/files; found \"v1/files\"",
            "t.yaml:9:24: routes[2].paths[1]: a path prefix must not contain a query (?), a fragment (#) or spaces; found \"/v1/x?y\"",
            "t.yaml:9:59: routes[2].model: model: (the model name the upstream sees) applies only to models: routes; remove it",
            "t.yaml:10:14: routes[3].models: is empty; list model names or globs, like [gpt-4o, \"gpt-4.1*\"]",
            "t.yaml:11:44: routes[4].model: is empty; name the model the upstream should see, or remove model:",
            "t.yaml:11:54: routes[4].name: is empty; name the route or remove name:",
        ]
    );
}

#[test]
fn route_names_default_and_must_be_unique() {
    let text = format!(
        "{HEAD}routes:\n  - models: [gpt-4o]\n    upstream: openai\n  - models: [gpt-4o, o3]\n    upstream: openai\n  \
         - name: chat\n    paths: [/v1/chat/]\n    upstream: openai\n  - name: chat\n    models: [\"*\"]\n    upstream: openai\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:9:5: routes[1]: duplicate route name \"gpt-4o\" (also the name of routes[0]); \
             a route's name defaults to its first model or path: set a distinct name:",
            "t.yaml:14:11: routes[3].name: duplicate route name \"chat\" (also the name of routes[2])",
        ]
    );
    let text = format!("{HEAD}routes:\n  - {{paths: [/v1/files/], upstream: openai}}\n  - {{name: all, paths: [/], upstream: openai}}\n");
    let config = load(&text);
    assert_eq!(route_names(&config), ["/v1/files", "all"]);
    assert_eq!(
        config
            .route_for_path("/v1/files/f1")
            .map(|r| r.name.as_str()),
        Some("/v1/files")
    );
    assert_eq!(
        config.route_for_path("/anything").map(|r| r.name.as_str()),
        Some("all")
    );
}

#[test]
fn admin_must_not_clash_with_listen() {
    let routes = "routes: [{models: [x], upstream: openai}]\n";
    for admin in ["0.0.0.0:8080", "127.0.0.1:8080"] {
        let text = format!("{HEAD}admin: {admin}\n{routes}");
        assert_eq!(
            problems(&text),
            ["t.yaml:6:8: admin: uses the same port as listen; pick another port"]
        );
    }
    let text = format!("{HEAD}admin: 127.0.0.1:9090\n{routes}");
    assert_eq!(load(&text).admin.map(|a| a.port()), Some(9090));
}

#[test]
fn addresses_urls_and_durations() {
    let text = "environment: test\nlisten: localhost:8080\nadmin: 9090\nmax_body_bytes: 0\nupstreams:\n  \
                a:\n    url: ftp://x\n    timeout: 30\n    connect_timeout: 1.5s\n    idle_timeout: 0s\n  \
                b:\n    url: https://h:70000/v1?x=1\nroutes: [{models: [x], upstream: a}]\n";
    assert_eq!(
        problems(text),
        [
            "t.yaml:2:9: listen: expected an IP address and port like 0.0.0.0:8080 or [::]:8080, found \"localhost:8080\"; \
             write 127.0.0.1 for localhost (host names are not resolved)",
            "t.yaml:3:8: admin: expected an IP address and port like 0.0.0.0:8080 or [::]:8080, found \"9090\"",
            "t.yaml:4:17: max_body_bytes: must be greater than 0 (the default is 33554432, 32 MiB)",
            "t.yaml:7:10: upstreams.a.url: unsupported scheme \"ftp\"; use http or https",
            "t.yaml:8:14: upstreams.a.timeout: expected a duration like 30s, 250ms, 5m or 1h, found the bare number \"30\"; \
             add a unit (ms, s, m or h)",
            "t.yaml:9:22: upstreams.a.connect_timeout: invalid duration \"1.5s\": fractions are not supported; \
             use a smaller unit (1500ms, not 1.5s); write it like 30s, 250ms, 5m or 1h",
            "t.yaml:10:19: upstreams.a.idle_timeout: must be greater than 0",
            "t.yaml:12:10: upstreams.b.url: a query string (?…) is not allowed in an upstream url",
        ]
    );
    let text = format!("{HEAD}    connect_timeout: 250ms\n    timeout: 2m\n    idle_timeout: 1h\nroutes: [{{models: [x], upstream: openai}}]\n");
    let openai = &load(&text).upstreams["openai"];
    assert_eq!(
        (openai.connect_timeout, openai.timeout, openai.idle_timeout),
        (
            Duration::from_millis(250),
            Duration::from_secs(120),
            Duration::from_secs(3600)
        )
    );
}

#[test]
fn client_timeout_is_a_duration_with_a_default() {
    let routes = "routes: [{models: [x], upstream: openai}]\n";
    assert_eq!(
        load(&format!("{HEAD}{routes}")).client_timeout,
        Duration::from_secs(60)
    );
    assert_eq!(Config::DEFAULT_CLIENT_TIMEOUT, Duration::from_secs(60));
    assert_eq!(
        load(&format!("{HEAD}client_timeout: 1500ms\n{routes}")).client_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(
        load(&format!("{HEAD}client_timeout: 2m\n{routes}")).client_timeout,
        Duration::from_secs(120)
    );
    for (value, message) in [
        (
            "30",
            "t.yaml:6:17: client_timeout: expected a duration like 30s, 250ms, 5m or 1h, found the bare number \"30\"; \
             add a unit (ms, s, m or h)",
        ),
        ("0s", "t.yaml:6:17: client_timeout: must be greater than 0"),
        (
            "1.5s",
            "t.yaml:6:17: client_timeout: invalid duration \"1.5s\": fractions are not supported; \
             use a smaller unit (1500ms, not 1.5s); write it like 30s, 250ms, 5m or 1h",
        ),
        (
            "soon",
            "t.yaml:6:17: client_timeout: invalid duration \"soon\": expected a number followed by a unit; \
             write it like 30s, 250ms, 5m or 1h",
        ),
    ] {
        assert_eq!(
            problems(&format!("{HEAD}client_timeout: {value}\n{routes}")),
            [message],
            "client_timeout: {value}"
        );
    }
    let misspelled = problems(&format!("{HEAD}client_timout: 5s\n{routes}"));
    assert!(
        misspelled[0].starts_with(
            "t.yaml:6:1: client_timout: unknown key \"client_timout\" (did you mean \"client_timeout\"?)"
        ),
        "{misspelled:?}"
    );
}

#[test]
fn yaml_level_problems_come_with_the_rest() {
    let text = format!("{HEAD}routes:\n  - &r {{models: [x], upstream: openai}}\n  - *r\nfoo: 1\n");
    assert_eq!(
        problems(&text),
        [
            "t.yaml:8:5: YAML aliases (*name) are not supported; repeat the value instead",
            "t.yaml:9:1: foo: unknown key \"foo\"; expected one of: environment, listen, admin, max_body_bytes, max_buffered_bytes, shutdown_grace, client_timeout, upstreams, routes, keys, rate_limit, telemetry, redaction, prices",
        ]
    );
    assert_eq!(
        problems("listen: [0.0.0.0:8080\nroutes: x\n"),
        ["t.yaml:2:7: YAML syntax error: illegal placement of ':' indicator"]
    );
    assert_eq!(problems("- a\n- b\n"), ["t.yaml:1:1: expected a mapping with keys environment, listen, admin, max_body_bytes, max_buffered_bytes, shutdown_grace, client_timeout, upstreams, routes, keys, rate_limit, telemetry, redaction, prices, found a list"]);
}

#[test]
fn load_file_reads_and_names_the_file() {
    let dir = std::env::temp_dir().join(format!("veilgate-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let good = dir.join("good.yaml");
    let text = format!("{HEAD}routes: [{{models: [x], upstream: openai}}]\n");
    std::fs::write(&good, text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        load_file(&good).map(|c| c.environment).ok().as_deref(),
        Some("test")
    );

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "listen: 1\n").unwrap_or_else(|e| panic!("{e}"));
    let err = load_file(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains(&format!(
            "\n{}:1:9: listen: expected an IP address",
            bad.display()
        )),
        "{err}"
    );

    let missing = dir.join("missing.yaml");
    let err = load_file(&missing)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The resilience example from the product issue, plus a local fallback and a `paths:` route.
const RESILIENT: &str = "environment: test
listen: 0.0.0.0:8080
upstreams:
  openai:
    url: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY:-}
    connect_timeout: 2s
    timeout: 60s          # until the first response byte
    idle_timeout: 30s     # longest silence inside a stream
    health_check: {path: /models, interval: 10s}
  azure-east:
    url: https://example.openai.azure.com/openai/deployments/{model}
    api_key: ${AZURE_OPENAI_KEY:-}
    auth_header: api-key
    query: {api-version: \"2024-10-21\"}
  local:
    url: http://127.0.0.1:11434/v1
    health_check: {path: models, interval: 1m, timeout: 500ms}
routes:
  - models: [gpt-4o]
    upstreams: [{name: openai, weight: 90}, {name: azure-east, weight: 10}]
    fallbacks: [local]
    retry_on: [connect, timeout, 429, 5xx]
    environment: staging
  - models: [x]
    upstream: local
    retry_on: []
  - paths: [/v1/files]
    upstreams: [{name: openai}, {name: local, weight: 0}]
    retry_on: [\"429\", connect]
  - models: [\"*\"]
    upstream: local
    fallbacks: [openai]
";

#[test]
fn resilience_keys_load() {
    let config = load(RESILIENT);
    let r = &config.routes[0];
    assert_eq!(
        r.targets,
        [
            Target {
                upstream: "openai".into(),
                weight: 90
            },
            Target {
                upstream: "azure-east".into(),
                weight: 10
            }
        ]
    );
    assert_eq!(r.fallbacks, ["local"]);
    assert_eq!(r.retry_on, RetryOn::default());
    assert_eq!(r.environment.as_deref(), Some("staging"));
    assert_eq!(
        r.upstream_names().collect::<Vec<_>>(),
        ["openai", "azure-east", "local"]
    );

    // `upstream: x` is one target of weight 1; retry_on [] retries nothing.
    let single = &config.routes[1];
    assert_eq!(
        single.targets,
        [Target {
            upstream: "local".into(),
            weight: 1
        }]
    );
    assert!(single.fallbacks.is_empty());
    assert_eq!(single.retry_on, RetryOn::NONE);
    assert_eq!(single.environment, None);

    // paths: routes take the same keys; weight defaults to 1, 0 is allowed beside a positive one.
    let files = &config.routes[2];
    assert_eq!(
        files.targets,
        [
            Target {
                upstream: "openai".into(),
                weight: 1
            },
            Target {
                upstream: "local".into(),
                weight: 0
            }
        ]
    );
    assert_eq!(
        files.retry_on,
        RetryOn {
            connect: true,
            too_many_requests: true,
            ..RetryOn::NONE
        },
        "a quoted \"429\" works as well as the integer"
    );
    assert_eq!(config.routes[3].retry_on, RetryOn::default(), "the default");
    assert_eq!(
        config.routes[3].upstream_names().collect::<Vec<_>>(),
        ["local", "openai"]
    );

    let openai = config.upstream("openai").unwrap();
    assert_eq!(openai.api_key.as_deref(), Some("sk-openai-SECRET"));
    assert_eq!(openai.auth, UpstreamAuth::Bearer);
    assert!(openai.query.is_empty());
    assert!(!openai.has_model_placeholder);
    assert_eq!(
        (openai.connect_timeout, openai.timeout, openai.idle_timeout),
        (
            Duration::from_secs(2),
            Duration::from_secs(60),
            Duration::from_secs(30)
        )
    );
    assert_eq!(
        openai.health_check,
        Some(HealthCheck {
            path: "models".into(),
            interval: Duration::from_secs(10),
            timeout: HealthCheck::DEFAULT_TIMEOUT,
        })
    );
    let check = openai.health_check.as_ref().unwrap();
    assert_eq!(
        openai.path_for(None, &check.path, None),
        "/v1/models",
        "the check path is joined to the url like a client path"
    );
    assert_eq!(
        config.upstream("local").unwrap().health_check,
        Some(HealthCheck {
            path: "models".into(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_millis(500),
        })
    );

    let azure = config.upstream("azure-east").unwrap();
    assert_eq!(azure.auth, UpstreamAuth::Header("api-key".into()));
    assert_eq!(azure.api_key, None);
    assert!(azure.has_model_placeholder);
    assert_eq!(azure.base_path, "/openai/deployments/{model}");
    assert_eq!(
        azure.query,
        [("api-version".to_owned(), "2024-10-21".to_owned())]
    );
    assert_eq!(azure.health_check, None);
    let checked = load(&format!(
        "{HEAD}  az:\n    url: https://r.openai.azure.com/openai/deployments/{{model}}\n    query: {{api-version: 2024-10-21}}\n    health_check: {{path: /openai/models}}\nroutes: [{{models: [x], upstream: az}}]\n"
    ));
    assert_eq!(
        checked
            .upstream("az")
            .unwrap()
            .health_check_target()
            .as_deref(),
        Some("/openai/models?api-version=2024-10-21"),
        "a {{model}} url is checked from the host's root, with its query"
    );
    assert_eq!(
        azure.path_for(Some("gpt-4o"), "chat/completions", None),
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(
        azure.path_for(
            Some("team/gpt-4o"),
            "/chat/completions",
            Some("stream=true")
        ),
        "/openai/deployments/team%2Fgpt-4o/chat/completions?stream=true&api-version=2024-10-21"
    );
    assert!(!format!("{config:?}").contains("SECRET"));
}

#[test]
fn resilience_defaults_without_the_new_keys() {
    let config = load(&format!(
        "{HEAD}routes: [{{models: [x], upstream: openai}}]\n"
    ));
    let openai = &config.upstreams["openai"];
    assert_eq!(openai.auth, UpstreamAuth::Bearer);
    assert!(openai.query.is_empty() && openai.health_check.is_none());
    assert!(!openai.has_model_placeholder);
    let route = &config.routes[0];
    assert_eq!(
        route.targets,
        [Target {
            upstream: "openai".into(),
            weight: 1
        }]
    );
    assert!(route.fallbacks.is_empty());
    assert_eq!(route.retry_on, RetryOn::default());
    assert_eq!(
        RetryOn::default(),
        RetryOn {
            connect: true,
            timeout: true,
            too_many_requests: true,
            server_error: true
        }
    );
    assert_eq!(route.environment, None);

    let config = load(&format!(
        "{HEAD}    health_check: {{path: /health/ready}}\nroutes: [{{models: [x], upstream: openai}}]\n"
    ));
    assert_eq!(
        config.upstreams["openai"].health_check,
        Some(HealthCheck {
            path: "health/ready".into(),
            interval: HealthCheck::DEFAULT_INTERVAL,
            timeout: HealthCheck::DEFAULT_TIMEOUT,
        })
    );
    assert_eq!(
        (HealthCheck::DEFAULT_INTERVAL, HealthCheck::DEFAULT_TIMEOUT),
        (Duration::from_secs(10), Duration::from_secs(5))
    );
}

#[test]
fn auth_header_forms() {
    let auth = |header: &str| {
        let text = format!(
            "{HEAD}    auth_header: {header}\nroutes: [{{models: [x], upstream: openai}}]\n"
        );
        load(&text).upstreams["openai"].auth.clone()
    };
    assert_eq!(auth("api-key"), UpstreamAuth::Header("api-key".into()));
    assert_eq!(
        auth("X-Goog-Api-Key"),
        UpstreamAuth::Header("x-goog-api-key".into()),
        "stored lowercase"
    );
    assert_eq!(auth("Authorization"), UpstreamAuth::Bearer);
    assert_eq!(auth("authorization"), UpstreamAuth::Bearer);
    assert_eq!(auth("''"), UpstreamAuth::Bearer, "empty is the default");
    assert_eq!(
        auth("${AUTH_HEADER:-}"),
        UpstreamAuth::Bearer,
        "an empty expansion too"
    );
}

#[test]
fn query_values_are_text_in_file_order() {
    let text = format!(
        "{HEAD}    query: {{z: 1, api-version: 2024-10-21, b: true, f: 1.5, h: 0x1F, o: 007, s: 'a b&c'}}\n\
         routes: [{{models: [x], upstream: openai}}]\n"
    );
    let config = load(&text);
    let openai = &config.upstreams["openai"];
    let pairs: Vec<(&str, &str)> = openai
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("z", "1"),
            ("api-version", "2024-10-21"),
            ("b", "true"),
            ("f", "1.5"),
            ("h", "0x1F"),
            ("o", "007"),
            ("s", "a b&c")
        ],
        "numbers and booleans as written, in file order"
    );
    assert_eq!(
        openai.path_for(None, "models", None),
        "/v1/models?z=1&api-version=2024-10-21&b=true&f=1.5&h=0x1F&o=007&s=a%20b%26c"
    );
}

#[test]
fn resilience_problems_are_reported_at_their_keys() {
    let text = format!(
        "{HEAD}  bad:\n    url: http://h/v1/{{foo}}\n    auth_header: 'not a header'\nroutes:\n  - models: [a]\n    upstream: openai\n    upstreams: [{{name: openai}}]\n  - models: [b]\n    upstreams: [{{name: openai, weight: 5000}}]\n    fallbacks: [openai]\n    retry_on: [connect, 503]\n  - models: [c]\n    upstreams: [{{name: openai, weight: 0}}]\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:7:10: upstreams.bad.url: unknown placeholder \"{foo}\"; the only placeholder allowed in an upstream url is {model} (the upstream model name)",
            "t.yaml:8:18: upstreams.bad.auth_header: \"not a header\" is not a valid HTTP header name; write e.g. api-key",
            "t.yaml:12:16: routes[0].upstreams: a route has either upstream: (one name) or upstreams: (a weighted list), not both",
            "t.yaml:14:40: routes[1].upstreams[0].weight: expected an integer from 0 to 1000 (a relative share), found \"5000\"",
            "t.yaml:16:25: routes[1].retry_on[1]: unknown retry condition \"503\"; expected connect, timeout, 429 or 5xx",
            "t.yaml:18:16: routes[2].upstreams: every weight is 0; give at least one upstream a weight above 0",
        ]
    );
}

#[test]
fn route_upstream_problems() {
    let text = format!(
        "{HEAD}  azure:\n    url: https://h/d/{{model}}\nroutes:\n\
         \x20 - models: [x]\n\
         \x20   upstreams: [{{name: openai, weight: -1}}, {{weight: 2}}, {{name: azur, weight: 1.5}}, {{name: openai}}]\n\
         \x20 - models: [y]\n\
         \x20   upstreams: []\n\
         \x20   fallbacks: [nope]\n\
         \x20 - models: [z]\n\
         \x20   fallbacks: [openai]\n\
         \x20   retry_on: [5XX, conect, '', timeout]\n\
         \x20   environment: ''\n\
         \x20 - paths: [/v1/files]\n\
         \x20   upstream: azure\n\
         \x20 - paths: [/v1/batches]\n\
         \x20   upstreams: [{{name: openai}}]\n\
         \x20   fallbacks: [azure]\n\
         \x20 - models: [w]\n\
         \x20   upstreams: openai\n\
         \x20   retry_on: connect\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:10:40: routes[0].upstreams[0].weight: expected an integer from 0 to 1000 (a relative share), found \"-1\"",
            "t.yaml:10:45: routes[0].upstreams[1].name: missing required key `name`; name an upstream",
            "t.yaml:10:65: routes[0].upstreams[2].name: unknown upstream \"azur\"; defined upstreams: azure, openai; did you mean \"azure\"?",
            "t.yaml:10:79: routes[0].upstreams[2].weight: expected an integer, found \"1.5\"",
            "t.yaml:10:92: routes[0].upstreams[3].name: upstream \"openai\" is listed twice in this route's upstreams or twice in its fallbacks; list each once (a target may be listed again in fallbacks)",
            "t.yaml:12:16: routes[1].upstreams: is empty; list {name, weight} entries",
            "t.yaml:13:17: routes[1].fallbacks[0]: unknown upstream \"nope\"; defined upstreams: azure, openai",
            "t.yaml:14:5: routes[2].upstream: missing required key `upstream`; name the upstream that serves this route (or list upstreams: with weights)",
            "t.yaml:16:16: routes[2].retry_on[0]: unknown retry condition \"5XX\"; expected connect, timeout, 429 or 5xx; did you mean \"5xx\"?",
            "t.yaml:16:21: routes[2].retry_on[1]: unknown retry condition \"conect\"; expected connect, timeout, 429 or 5xx; did you mean \"connect\"?",
            "t.yaml:16:29: routes[2].retry_on[2]: unknown retry condition \"\"; expected connect, timeout, 429 or 5xx",
            "t.yaml:17:18: routes[2].environment: is empty; write a label such as staging, or remove environment:",
            "t.yaml:19:15: routes[3].upstream: upstream \"azure\" has {model} in its url, and a paths: route has no model to put there; use an upstream without {model}",
            "t.yaml:22:17: routes[4].fallbacks[0]: upstream \"azure\" has {model} in its url, and a paths: route has no model to put there; use an upstream without {model}",
            "t.yaml:24:16: routes[5].upstreams: expected a list (like [a, b]), found \"openai\"",
            "t.yaml:25:15: routes[5].retry_on: expected a list (like [a, b]), found \"connect\"",
        ]
    );
}

#[test]
fn upstream_resilience_problems() {
    let text = format!(
        "{HEAD}    query: {{'': x, n: ~}}\n    auth_header: Host\n    health_check: {{path: 'https://h/models', interval: 0s, timeout: 5}}\n\
         \x20 b:\n    url: https://h/{{MODEL}}/x\n\
         \x20 c:\n    url: https://h/a}}\n\
         \x20 d:\n    url: ${{AZ:-https://h/{{deployment}}}}\n\
         \x20 e:\n    url: https://h/{{model}}\n    health_check: {{path: /models}}\n\
         \x20 f:\n    url: https://h/v1\n    health_check: {{path: 'a b'}}\n\
         \x20 g:\n    url: https://h/v1\n    health_check: {{}}\n\
         \x20 h:\n    url: https://h/v1\n    auth_header: transfer-encoding\n\
         routes: [{{models: [x], upstream: openai}}]\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:6:12: upstreams.openai.query: has an empty parameter name",
            "t.yaml:6:23: upstreams.openai.query.n: expected a string, found an empty value",
            "t.yaml:7:18: upstreams.openai.auth_header: \"Host\" is a header the gateway sets itself; name the header the API reads its key from, like api-key",
            "t.yaml:8:26: upstreams.openai.health_check.path: \"https://h/models\": must be a path relative to the upstream url, like /models, not a url",
            "t.yaml:8:56: upstreams.openai.health_check.interval: must be greater than 0",
            "t.yaml:8:69: upstreams.openai.health_check.timeout: expected a duration like 30s, 250ms, 5m or 1h, found the bare number \"5\"; add a unit (ms, s, m or h)",
            "t.yaml:10:10: upstreams.b.url: unknown placeholder \"{MODEL}\"; the only placeholder allowed in an upstream url is {model} (the upstream model name); did you mean \"{model}\"?",
            "t.yaml:12:10: upstreams.c.url: unbalanced { or } in the url path; the only placeholder allowed in an upstream url is {model} (the upstream model name)",
            "t.yaml:14:10: upstreams.d.url: the expansion of \"${AZ:-https://h/{deployment}}\" has an unknown placeholder; the only placeholder allowed in an upstream url is {model} (the upstream model name)",
            "t.yaml:20:26: upstreams.f.health_check.path: \"a b\": must not contain spaces, control characters, braces or a fragment (#); write a path relative to the upstream url, like /models",
            "t.yaml:23:19: upstreams.g.health_check.path: missing required key `path`; set the path to GET, relative to the upstream url, like /models",
            "t.yaml:26:18: upstreams.h.auth_header: \"transfer-encoding\" is a header the gateway sets itself; name the header the API reads its key from, like api-key",
        ]
    );
}

#[test]
fn max_buffered_bytes_defaults_and_is_checked_against_max_body_bytes() {
    let routes = "routes: [{models: [x], upstream: openai}]\n";
    let config = load(&format!("{HEAD}{routes}"));
    assert_eq!(config.max_buffered_bytes, 256 * 1024 * 1024);
    let config = load(&format!(
        "{HEAD}max_body_bytes: 1000\nmax_buffered_bytes: 5000\n{routes}"
    ));
    assert_eq!(config.max_buffered_bytes, 5000);
    assert_eq!(
        problems(&format!("{HEAD}max_buffered_bytes: 0\n{routes}")),
        ["t.yaml:6:21: max_buffered_bytes: must be greater than 0 (the default is 268435456, 256 MiB)"]
    );
    assert_eq!(
        problems(&format!(
            "{HEAD}max_body_bytes: 2000\nmax_buffered_bytes: 1000\n{routes}"
        )),
        ["t.yaml:7:21: max_buffered_bytes: is 1000, less than max_body_bytes (2000): a body of the largest accepted size could never be read; raise it to at least 2000"]
    );
    assert_eq!(
        problems(&format!("{HEAD}max_body_bytes: 300000000\n{routes}")),
        ["t.yaml:6:17: max_body_bytes: is 300000000, more than max_buffered_bytes (not set: 268435456, 256 MiB), the most request bytes buffered at once; set max_buffered_bytes to at least 300000000"]
    );
    assert_eq!(
        problems(&format!("{HEAD}max_buffered_bytes: lots\n{routes}")),
        ["t.yaml:6:21: max_buffered_bytes: expected an integer, found \"lots\""]
    );
}

/// A head with two environments in use: the top-level one and a key's.
const KEYED: &str = "environment: production\nlisten: 0.0.0.0:8080\nupstreams:\n  openai:\n    url: https://api.openai.com/v1\nroutes:\n  - models: [gpt-4o, \"gpt-4.1*\"]\n    upstream: openai\n";

#[test]
fn a_trace_environment_nobody_uses_is_an_error_with_did_you_mean() {
    let text = format!(
        "{KEYED}keys:\n  - name: web\n    key: k1\n    environment: staging\ntelemetry:\n  traces:\n    environments:\n      stagign:\n        endpoint: http://staging:4318/v1/traces\n      qa:\n        endpoint: http://qa:4318/v1/traces\n      staging:\n        endpoint: http://staging:4318/v1/traces\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:17:9: telemetry.traces.environments.stagign: no traffic is labelled \"stagign\" (the labels in use are \"production\", \"staging\"); did you mean \"staging\"?",
            "t.yaml:19:9: telemetry.traces.environments.qa: no traffic is labelled \"qa\" (the labels in use are \"production\", \"staging\": the top-level environment and the routes' and keys' environment); its spans would go to the default exporter",
        ]
    );
}

#[test]
fn a_shared_file_may_name_other_deployments_environments_but_not_typos() {
    // environment from ${VEILGATE_ENV}: the same file serves staging and production.
    let text = "environment: ${VEILGATE_ENV}\nlisten: 0.0.0.0:8080\nupstreams:\n  openai:\n    url: https://api.openai.com/v1\nroutes:\n  - models: [gpt-4o]\n    upstream: openai\ntelemetry:\n  traces:\n    environments:\n      staging:\n        endpoint: http://staging:4318/v1/traces\n      production:\n        endpoint: http://prod:4318/v1/traces\n";
    load(text);
    let typo = text.replace("      staging:", "      productoin:");
    assert_eq!(
        problems(&typo),
        ["t.yaml:13:9: telemetry.traces.environments.productoin: no traffic is labelled \"productoin\" (the labels in use are \"production\"); did you mean \"production\"?"]
    );
}

#[test]
fn a_key_model_no_route_serves_is_an_error() {
    let text = format!(
        "{KEYED}keys:\n  - name: web\n    key: k1\n    models: [gpt-4o, gpt4o, \"gpt-4.1*\", gpt-4.1-mini, claude]\n"
    );
    assert_eq!(
        problems(&text),
        [
            "t.yaml:12:22: keys[0].models[1]: no route serves the model \"gpt4o\", so this key could never use it; did you mean \"gpt-4o\"?",
            "t.yaml:12:55: keys[0].models[4]: no route serves the model \"claude\", so this key could never use it; add a route for it or remove it",
        ]
    );
}

#[test]
fn a_weighted_upstream_listed_again_in_fallbacks_is_accepted_and_tried_once() {
    let text = format!(
        "{HEAD}  azure:\n    url: https://azure.example/v1\nroutes:\n  - models: [gpt-4o]\n    upstreams: [{{name: openai, weight: 90}}, {{name: azure, weight: 10}}]\n    fallbacks: [openai]\n"
    );
    let config = load(&text);
    let route = &config.routes[0];
    assert_eq!(
        route.upstream_names().collect::<Vec<_>>(),
        ["openai", "azure"]
    );
    let twice = format!(
        "{HEAD}  azure:\n    url: https://azure.example/v1\nroutes:\n  - models: [gpt-4o]\n    upstream: openai\n    fallbacks: [azure, azure]\n"
    );
    assert_eq!(
        problems(&twice),
        ["t.yaml:11:24: routes[0].fallbacks[1]: upstream \"azure\" is listed twice in this route's upstreams or twice in its fallbacks; list each once (a target may be listed again in fallbacks)"]
    );
}

#[test]
fn a_budget_written_with_a_unit_gets_one_message_saying_it_takes_a_number() {
    let text = format!(
        "{KEYED}keys:\n  - name: web\n    key: k1\n    limits: {{requests_per_minute: '600/min', concurrent: 5}}\n"
    );
    assert_eq!(
        problems(&text),
        ["t.yaml:12:35: keys[0].limits.requests_per_minute: expected an integer, found the string \"600/min\"; it takes a number alone, the window is in its name: requests_per_minute: 600"]
    );
}

const PRICED: &str = "environment: test\nlisten: 127.0.0.1:0\nupstreams:\n  u: {url: http://127.0.0.1:9/v1}\nroutes:\n  - models: [\"*\"]\n    upstream: u\n";

#[test]
fn prices_extend_and_override_the_built_in_table() {
    let config = load(&format!(
        "{PRICED}prices:\n  gpt-4o: {{input: 2.00, output: 8.00}}\n  \"llama-3*\": {{input: 0.10, output: 0.20, max_output_tokens: 8192}}\n"
    ));
    let gpt = config.prices.price("gpt-4o-2024-08-06").unwrap();
    assert_eq!(
        (gpt.price.input, gpt.price.output),
        (2.0, 8.0),
        "the config wins"
    );
    assert_eq!(gpt.source, crate::spend::PriceSource::Configured);
    let llama = config.prices.price("llama-3.1-70b").unwrap();
    assert_eq!(llama.pattern, "llama-3*");
    assert_eq!(llama.price.output_cap(), 8192);
    let mini = config.prices.price("gpt-4o-mini").unwrap();
    assert_eq!(mini.source, crate::spend::PriceSource::BuiltIn);
    assert_eq!(mini.price.input, 0.15);
    assert!(config.prices.price("my-finetune").is_none());
}

#[test]
fn bad_prices_are_reported_where_they_are() {
    let p = problems(&format!(
        "{PRICED}prices:\n  \"gpt-[\": {{input: 1, output: 2}}\n  m1: {{input: -1, output: .nan}}\n  m3: {{input: 1, output: 2, max_output_tokens: 0}}\n"
    ));
    assert_eq!(
        p,
        [
            "t.yaml:9:12: prices.gpt-[: is not a valid model name or glob: error parsing glob 'gpt-[': unclosed character class; missing ']'",
            "t.yaml:10:15: prices.m1.input: -1 is not a price: write USD per million tokens, 0 or more (like 2.50)",
            "t.yaml:10:27: prices.m1.output: NaN is not a price: write USD per million tokens, 0 or more (like 2.50)",
            "t.yaml:11:48: prices.m3.max_output_tokens: must be at least 1 (leave it out when unknown)",
        ]
    );
    // The shape of an entry: both base prices, and only known keys.
    let p = problems(&format!("{PRICED}prices:\n  m2: {{input: 1}}\n"));
    assert_eq!(p, ["t.yaml:9:7: prices.m2: missing required key `output`"]);
    let p = problems(&format!(
        "{PRICED}prices:\n  m4: {{input: 1, output: 2, cached: 0.5}}\n"
    ));
    assert!(
        p[0].contains("prices.m4") && p[0].contains("cached"),
        "{p:#?}"
    );
}

#[test]
fn usd_budgets_are_dollars() {
    let config = load(&format!(
        "{PRICED}    limits: {{usd_per_hour: 0.5, usd_per_day: 20, usd_per_month: 400}}\n"
    ));
    let limits = &config.routes[0].limits;
    assert_eq!(limits.usd_per_hour, Some(crate::limits::Usd(500_000)));
    assert_eq!(limits.usd_per_day, Some(crate::limits::Usd(20_000_000)));
    assert_eq!(limits.usd_per_month, Some(crate::limits::Usd(400_000_000)));
    let p = problems(&format!("{PRICED}    limits: {{usd_per_day: -3}}\n"));
    assert!(
        p[0].contains("usd_per_day") && p[0].contains("not an amount of dollars"),
        "{p:#?}"
    );
    let p = problems(&format!("{PRICED}    limits: {{usd_per_day: 0}}\n"));
    assert!(p[0].contains("usd_per_day"), "{p:#?}");
}

#[test]
fn unpriced_routed_models_are_listed() {
    let config = load(
        "environment: test\nlisten: 127.0.0.1:0\nupstreams:\n  u: {url: http://127.0.0.1:9/v1}\nroutes:\n  - models: [gpt-4o, my-finetune, \"gpt-4.1*\", \"llama-*\"]\n    upstream: u\n    name: a\n  - models: [fast]\n    model: gpt-4o-mini\n    upstream: u\n  - models: [slow]\n    model: mixtral-8x7b\n    upstream: u\n  - paths: [/v1/files]\n    upstream: u\n",
    );
    assert_eq!(
        config.unpriced_models(),
        [
            ("a", "my-finetune"),
            ("a", "llama-*"),
            ("slow", "mixtral-8x7b")
        ]
    );
}

#[test]
fn anthropic_upstreams_send_x_api_key_unless_told_otherwise() {
    let config = load(
        "environment: test\nlisten: 127.0.0.1:0\nupstreams:\n  claude: {url: https://api.anthropic.com/v1, api_key: sk-ant-x, api: anthropic}\n  proxy: {url: https://llm.example/v1, api: anthropic, auth_header: authorization}\n  openai: {url: https://api.openai.com/v1}\nroutes:\n  - models: [\"claude-*\"]\n    upstream: claude\n",
    );
    let claude = config.upstream("claude").unwrap();
    assert_eq!(claude.api, UpstreamApi::Anthropic);
    assert_eq!(claude.auth, UpstreamAuth::Header("x-api-key".into()));
    let proxy = config.upstream("proxy").unwrap();
    assert_eq!(
        (proxy.api, &proxy.auth),
        (UpstreamApi::Anthropic, &UpstreamAuth::Bearer)
    );
    assert_eq!(config.upstream("openai").unwrap().api, UpstreamApi::OpenAi);
    let p = problems(
        "environment: test\nlisten: 127.0.0.1:0\nupstreams:\n  u: {url: http://127.0.0.1:9/v1, api: gemini}\nroutes:\n  - models: [m]\n    upstream: u\n",
    );
    assert_eq!(
        p,
        ["t.yaml:4:40: upstreams.u.api: \"gemini\" is not an API Veilgate speaks; write openai (the default) or anthropic"]
    );
}

#[test]
fn custom_detectors_take_keywords_entropy_and_examples_and_check_them() {
    let head = "\
environment: t
listen: 127.0.0.1:0
upstreams:
  u: {url: 'http://u.test/v1'}
routes: [{models: [m], upstream: u}]
redaction:
  detectors:
";
    let good = format!(
        "{head}    - name: acme_key
      category: secret
      pattern: 'key_(?:live|test)_ACME[A-Za-z0-9]{{16}}'
      keywords: [ACME]
      entropy: 3.0
      examples:
        match:
          - ['key_live_ACME', 'q9wMxEhh2FDEEtfj']
          - text: 'set key_test_ACMEq9wMxEhh2FDEEtfj now'
            value: key_test_ACMEq9wMxEhh2FDEEtfj
        no_match: [key_live_ACMEaaaaaaaaaaaaaaaa, 'key_live_q9wMxEhh2FDEEtfj']
"
    );
    let config = load(&good);
    let d = &config.redaction.detectors[0];
    assert_eq!(
        (d.keywords.as_slice(), d.entropy),
        (&["ACME".to_owned()][..], Some(3.0))
    );
    assert_eq!(
        (d.examples.matches.len(), d.examples.no_match.len()),
        (2, 2)
    );

    // Each way an example fails, at its own path, never quoting it.
    let failing = [
        (
            "        match: ['key_live_ACMEq9wMx']\n",
            "redaction.detectors[0].examples.match[0]: detector `acme_key`: example match[0] is not found",
        ),
        (
            "        match: ['a key_live_ACMEq9wMxEhh2FDEEtfj']\n",
            "example match[0] is found, but not as the whole value",
        ),
        (
            "        no_match: ['key_live_ACMEq9wMxEhh2FDEEtfj']\n",
            "redaction.detectors[0].examples.no_match[0]: detector `acme_key`: example no_match[0] is found, and must not be",
        ),
        (
            "        match: [1234]\n",
            "redaction.detectors[0].examples.match[0]: write the example in quotes",
        ),
    ];
    for (examples, want) in failing {
        let text = format!(
            "{head}    - name: acme_key\n      category: secret\n      pattern: 'key_live_ACME[A-Za-z0-9]{{16}}'\n      examples:\n{examples}"
        );
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains(want), "{found:?} lacks {want}");
        assert!(found[0].starts_with("t.yaml:"), "{found:?}");
        assert!(!found[0].contains("q9wMx"), "quotes the example: {found:?}");
    }

    // Keywords must be in every match; entropy is bits per byte.
    let bad = [
        (
            "      pattern: '[A-Z]{4}_[0-9]{8}'\n      keywords: [ACME]\n",
            "keywords: every match must contain one of them",
        ),
        (
            "      pattern: 'ACME_[0-9]{8}'\n      entropy: 9\n",
            "entropy must be between 0 and 8",
        ),
        (
            "      pattern: 'ACME_[0-9]{8}'\n      keywords: ['']\n",
            "keywords: at most 32",
        ),
    ];
    for (body, want) in bad {
        let text = format!("{head}    - name: acme_key\n      category: secret\n{body}");
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("redaction.detectors[0]: detector `acme_key`: ")
                && found[0].contains(want),
            "{found:?} lacks {want}"
        );
    }
}

#[test]
fn a_detector_action_is_one_action_or_one_per_direction() {
    let text = |actions: &str| {
        format!(
            "\
environment: t
listen: 127.0.0.1:0
upstreams:
  u: {{url: 'http://u.test/v1'}}
redaction:
  actions: {{email: {{request: mask}}, phone: redact}}
routes:
  - models: [m]
    upstream: u
    redaction:
      actions: {actions}
"
        )
    };
    let config = load(&text("{email: {response: hash}}").replace(
        "redaction:\n  actions",
        "redaction:\n  hash_key: k\n  actions",
    ));
    let policy = config.routes[0].redaction.as_ref().unwrap();
    let both = DetectorActions::both;
    assert_eq!(
        policy.actions.get("email"),
        Some(&DetectorActions {
            request: Some(Action::Mask),
            response: Some(Action::Hash)
        }),
        "a route's action for one direction keeps the inherited other"
    );
    assert_eq!(policy.actions.get("phone"), Some(&both(Action::Redact)));
    let found = problems(&text("{email: {requests: mask}}"));
    assert!(
        found.len() == 1
            && found[0].contains("routes[0].redaction.actions.email")
            && found[0].contains("requests"),
        "{found:?}"
    );
    let found = problems(&text("{email: maks}"));
    assert!(
        found.len() == 1
            && found[0].contains("routes[0].redaction.actions.email")
            && found[0].contains("maks"),
        "{found:?}"
    );
}

#[test]
fn a_routes_bad_detector_is_pointed_at_in_the_routes_own_list() {
    // The route inherits one custom detector from the top level and adds its own: the problem
    // is at the route's `detectors[0]` (line 13), not at an index of the merged policy.
    let text = "\
environment: t
listen: 127.0.0.1:0
upstreams:
  u: {url: 'http://u.test/v1'}
redaction:
  detectors:
    - {name: employee_id, pattern: 'EMP-[0-9]{6}', category: pii}
routes:
  - models: [m]
    upstream: u
    redaction:
      detectors:
        - {name: badge, pattern: 'B-[0-9', category: pii}
";
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("t.yaml:13:") && found[0].contains("routes[0].redaction.detectors[0]"),
        "{found:?}"
    );
    assert!(found[0].contains("badge"), "{found:?}");
}
