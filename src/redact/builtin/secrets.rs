//! Tests of the built-in secret detectors beyond their catalogue examples: exact values,
//! boundaries, placeholders.

use crate::redact::builtin::testing::{finds, misses, tok};

#[test]
fn aws_access_key() {
    let key = tok("AKIA", "ATJPUU5XFMZKP2EC");
    finds("aws_access_key", &format!("id={key} ok"), &key);
    finds(
        "aws_access_key",
        &tok("ASIA", "ATJPUU5XFMZKP2EC"),
        &tok("ASIA", "ATJPUU5XFMZKP2EC"),
    );
    // AWS documentation's example key id is public, allow-listed as gitleaks does.
    misses("aws_access_key", &tok("AKIA", "IOSFODNN7EXAMPLE"));
    misses("aws_access_key", &tok("AKIA", "AAAAAAAAAAAAAAAA"));
    misses("aws_access_key", &tok("XAKIA", "ATJPUU5XFMZKP2EC"));
    misses("aws_access_key", &tok("AKIA", "ATJPUU5XFMZKP2E"));
    misses("aws_access_key", "AKIA is a prefix");
}

#[test]
fn aws_secret_key() {
    let secret = "9Pu2njHkAm1+5wDr16EpLLJIVGHz4FxFEtKyPiYG";
    finds(
        "aws_secret_key",
        &format!("aws_secret_access_key = {secret}"),
        secret,
    );
    finds(
        "aws_secret_key",
        &format!(r#"{{"AWS_SECRET_ACCESS_KEY": "{secret}"}}"#),
        secret,
    );
    finds(
        "aws_secret_key",
        &format!("secretAccessKey: '{secret}'"),
        secret,
    );
    misses(
        "aws_secret_key",
        "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}",
    );
    misses("aws_secret_key", "aws_secret_access_key = short");
    misses(
        "aws_secret_key",
        &format!("aws_secret_access_key = {}", "A".repeat(40)),
    );
}

#[test]
fn github_token() {
    let classic = tok("ghp_", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d");
    finds("github_token", &format!("token {classic}."), &classic);
    for p in ["gho_", "ghu_", "ghs_", "ghr_"] {
        let t = tok(p, "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d");
        finds("github_token", &t, &t);
    }
    let fine = tok(
        "github_pat_",
        "KLzdocJ2isAjIhKtJ0RlgL_KOmxgJTeKdNnFRIBXuDL7DxtpYlSXpfKtHF4vUCsMehGAkWvj7FAc9QeWJK",
    );
    finds("github_token", &fine, &fine);
    misses("github_token", "ghp_your_token_here");
    misses("github_token", &tok("ghp_", "u8jzPde0IgxLd6GncfBAep"));
}

#[test]
fn gitlab_token() {
    let t = tok("glpat-", "ORS-6ilI8ihN5KXSc7Tv");
    finds("gitlab_token", &format!("{t}."), &t);
    misses("gitlab_token", &tok("glpat-", "xxxxxxxxxxxxxxxxxxxx"));
    misses("gitlab_token", "glpat-short");
}

#[test]
fn slack_token_and_webhook() {
    let t = tok("xoxb-", "9170342366-7127684268465-R4y9ojfljoQoaF1LlqsajAIx");
    finds("slack_token", &t, &t);
    let a = tok("xapp-", "1-A0123ABCDEF-1234567890123-0a1b2c3d4e5f6a7b8c9d");
    finds("slack_token", &a, &a);
    misses("slack_token", "xoxb-123");
    let hook = tok(
        "https://hooks.slack.com/",
        "services/TUI6D39ZZ/BZZG4ZDME/nCkhvMdgaKjIg8xNbe3nNyjO",
    );
    finds("slack_webhook", &format!("post to {hook} now"), &hook);
    misses("slack_webhook", "see https://hooks.slack.com/ for docs");
}

#[test]
fn stripe_key() {
    let live = tok("sk_live_", "q9wMxEhh2FDEEtfjgVvVqE1S");
    finds("stripe_key", &live, &live);
    let restricted = tok("rk_test_", "q9wMxEhh2FDEEtfjgVvVqE1S");
    finds("stripe_key", &restricted, &restricted);
    misses("stripe_key", &tok("pk_live_", "q9wMxEhh2FDEEtfjgVvVqE1S"));
}

#[test]
fn openai_key() {
    let proj = tok(
        "sk-proj-",
        "ucAUsdMlHUvTCQCyEZDz-TddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Zkuvqdt7s8Stqcbnr3yT3BlbkFJBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ59FHz5r1pY4OjE2jBMptUsGr7CmY_uCu",
    );
    finds("openai_key", &format!("OPENAI_API_KEY={proj}"), &proj);
    // The shortest the regex takes (28 bytes): the prefilter's minimum once said 29.
    let shortest = tok("sk-proj-", "Xq7Lm2Vb9Rt4Wz8Kp3Nd");
    finds("openai_key", &format!("key {shortest} end"), &shortest);
    let legacy = format!(
        "sk-{}{}{}",
        "TBGzvAmwufUxbvJDCTby", "T3BlbkFJ", "vHNsG9eh6Yo4gfqrc5Xl"
    );
    finds("openai_key", &legacy, &legacy);
    for p in ["sk-svcacct-", "sk-admin-"] {
        let t = tok(p, "TddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Z");
        finds("openai_key", &t, &t);
    }
    misses("openai_key", "sk-your-key-here");
    misses(
        "openai_key",
        &tok("sk-proj-", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    );
    misses("openai_key", "risk-proj-assessment");
}

#[test]
fn anthropic_key() {
    let t = tok(
        "sk-ant-api03-",
        "Iq2HZt-PlJhx2jIclHkCiHp6bR1IqfEouHgxzNNAL5wIScGebcy8F5n3-YNBDRzrZSgqbjG3uhkWKFLf6xuI5aHUQPFeNAA",
    );
    finds("anthropic_key", &t, &t);
    let admin = tok(
        "sk-ant-admin01-",
        "Iq2HZt-PlJhx2jIclHkCiHp6bR1IqfEouHgxzNNAL5w",
    );
    finds("anthropic_key", &admin, &admin);
    misses("anthropic_key", "sk-ant-your-key-here");
    misses("openai_key", &t);
}

#[test]
fn google_api_key() {
    let t = tok("AIza", "BTxaQWk8JzFalHlsZfYcMMDktXP-tKsf2rc");
    finds("google_api_key", &format!("key={t}&q=1"), &t);
    misses("google_api_key", "AIzaShort");
}

#[test]
fn gcp_service_account() {
    let id = "72014b3ce107f80e222f828767efc2f91624a894";
    finds(
        "gcp_private_key_id",
        &format!(r#"{{"type": "service_account", "private_key_id": "{id}"}}"#),
        id,
    );
    finds(
        "gcp_private_key_id",
        &format!(r#"{{\"type\": \"service_account\", \"private_key_id\": \"{id}\"}}"#),
        id,
    );
    misses("gcp_private_key_id", r#""private_key_id": "abc123""#);
}

#[test]
fn private_key() {
    let body = "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB";
    let key = format!("-----BEGIN EC PRIVATE KEY-----\n{body}\n-----END EC PRIVATE KEY-----");
    finds("private_key", &format!("here:\n{key}\n"), &key);
    let escaped = key.replace('\n', "\\n");
    finds(
        "private_key",
        &format!(r#"{{"private_key": "{escaped}\n"}}"#),
        &escaped,
    );
    misses(
        "private_key",
        &format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----"),
    );
}

#[test]
fn jwt() {
    let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    finds("jwt", &format!("Bearer {t}"), t);
    misses("jwt", "eyJhbGciOiJIUzI1NiJ9");
    misses("jwt", "eyJ.eyJ.sig");
}

#[test]
fn encoded_jwt() {
    use base64::Engine;
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let t = base64::engine::general_purpose::STANDARD.encode(jwt);
    finds("encoded_jwt", &format!("export TOKEN={t}\n"), &t);
    misses("encoded_jwt", "ZXlKaGJHY2lPaU short");
    misses("encoded_jwt", &format!("x{t}"));
}

#[test]
fn sendgrid_npm_pypi_huggingface() {
    let sg = tok(
        "SG.",
        "b9h_ImB_LK777pzNk8cL6j.5IXAAjlsHUqJoUD-_Ydua_5ZMs1SWOpQaPRYpzbLGVi",
    );
    finds("sendgrid_key", &sg, &sg);
    misses("sendgrid_key", "SG.short.value");
    let npm = tok("npm_", "zy3Lex7BWr2drgd1QsO7jprBGumXxY9B4bZW");
    finds(
        "npm_token",
        &format!("//registry.npmjs.org/:_authToken={npm}"),
        &npm,
    );
    misses("npm_token", "npm_install_deps");
    let pypi = tok(
        "pypi-AgEIcHlwaS5vcmc",
        "ZAkg05rK_gqv81RKMGHZEM9YpvujA-C5Q52ryFlwRlOEVHzc0X0AWIRh-JUqBlIFXZ53Nc",
    );
    finds("pypi_token", &pypi, &pypi);
    misses("pypi_token", "pypi-AgEIcHlwaS5vcmcShort");
    let hf = tok("hf_", "icBTWZELFaezHDCpYgojjHRgUSPWDfJXca");
    finds("huggingface_token", &hf, &hf);
    misses("huggingface_token", "hf_model_name_v2");
}

#[test]
fn shopify_twilio_mailgun() {
    let shop = tok("shpat_", "471948d33296c87009e8a7f770d9106f");
    finds("shopify_token", &shop, &shop);
    misses(
        "shopify_token",
        &tok("shpat_", "0000000000000000000000000000000g"),
    );
    let tw = tok("SK", "d287db7f1adbc60926f6967e7893f57f");
    finds("twilio_api_key", &format!("sid={tw}"), &tw);
    misses("twilio_api_key", "SKU 12345 in stock");
    let mg = tok("key-", "A6Qd8Mj7zdnbMjAdTdlzC5T4uUhf7kvm");
    finds("mailgun_key", &mg, &mg);
    misses("mailgun_key", "key-value store");
}

#[test]
fn azure_and_telegram() {
    let az = tok("lP78Q~", "7eNWVQ4vnakJkS1pAWTN3lg8zV5yPU8d0F");
    finds("azure_client_secret", &format!("secret: {az} "), &az);
    misses("azure_client_secret", "Q~ is not a secret");
    let tg = tok("123456789:AA", "ZfWe7ihGyiRUIQfHOJMaidDn87XG3-q-x");
    finds("telegram_bot_token", &format!("bot{tg}"), &tg);
    misses("telegram_bot_token", "at 12:30 AA meeting");
    // gitleaks' own samples: a single `A`, ids from 5 to 16 digits; not inside a word.
    let tg = tok("28791204:A", "x46zp0d0705k4en5b1zt6y2w8oy3dktx5f");
    finds(
        "telegram_bot_token",
        &format!("telegramToken=\"{tg}\""),
        &tg,
    );
    misses(
        "telegram_bot_token",
        "2927:Aehazy0lse-wa1-qsnj986lpkaao47kt_xf",
    );
    misses(
        "telegram_bot_token",
        "73622275989326063:Abk0e1a3ll47zmmkx3lsgn_xthx2vyt7doi",
    );
    misses(
        "telegram_bot_token",
        "type=\"clm58804:AgencyIdentificationCodeContentType\"",
    );
    misses("telegram_bot_token", &format!("{tg}hello"));
    misses("telegram_bot_token", &format!("{tg}-some-other-thing"));
    let url = format!("https://api.telegram.org/bot{tg}/sendMessage");
    finds("telegram_bot_token", &url, &tg);
}

#[test]
fn assignments_in_more_languages() {
    for text in [
        "API_TOKEN ?= Xk9mP2vL8qR4wT",
        "API_TOKEN ::= Xk9mP2vL8qR4wT",
        "API_TOKEN :::= Xk9mP2vL8qR4wT",
        "$apiToken .= 'Xk9mP2vL8qR4wT';",
        "var apiToken string = \"Xk9mP2vL8qR4wT\"",
        "<apiToken>\n    Xk9mP2vL8qR4wT\n</apiToken>",
    ] {
        finds("generic_secret", text, "Xk9mP2vL8qR4wT");
        // And through the whole redactor: the prefilter opens a window there.
        let redactor = crate::redact::Redactor::new(&crate::redact::PolicySpec::default())
            .expect("default policy");
        let mut cx = crate::redact::RequestRedaction::new();
        let out = redactor
            .redact_text(crate::redact::Direction::Request, text, &mut cx)
            .expect("redacted");
        assert!(
            !out.contains("Xk9mP2vL8qR4wT") && out.contains("[REDACTED:generic_secret]"),
            "{text} -> {out}"
        );
    }
}

#[test]
fn age_and_sourcegraph() {
    let age = tok(
        "AGE-SECRET-KEY-1",
        "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE",
    );
    finds("age_secret_key", &format!("key: {age}\n"), &age);
    misses(
        "age_secret_key",
        "AGE-SECRET-KEY-1 is the prefix of an age key",
    );
    let sg = tok("sgp_", "d3b07384d113edec49eaa6238ad5ff00a1b2c3d4");
    finds("sourcegraph_token", &format!("SRC_ACCESS_TOKEN={sg}"), &sg);
    let scoped = tok(
        "sgp_",
        "0123456789abcdef_c157a3d9f4e28b60a7d5c3e1f9b2a8d4c6e0f1a3",
    );
    finds("sourcegraph_token", &format!("token {scoped} end"), &scoped);
    misses("sourcegraph_token", "sgp_not_a_token");
}

#[test]
fn url_and_connection_string_passwords() {
    finds(
        "url_password",
        "DATABASE_URL=postgres://admin:S3cr3tP4ss@db.example.com:5432/app",
        "S3cr3tP4ss",
    );
    finds("url_password", "redis://:hunter2@cache:6379/0", "hunter2");
    // Non-ASCII passwords take up to 4 bytes a character: the declared maximum once
    // counted characters (424 bytes) and cut this one.
    let long = "é".repeat(250);
    finds("url_password", &format!("https://user:{long}@host/"), &long);
    finds(
        "url_password",
        "amqp://user:p%40ss!w0rd@mq/vhost",
        "p%40ss!w0rd",
    );
    misses("url_password", "https://example.com:8443/path?q=1");
    misses("url_password", "postgres://admin:${DB_PASSWORD}@db/app");
    misses("url_password", "mailto:someone@example.com");
    finds(
        "connection_string_password",
        "Server=tcp:db.example.net,1433;Database=app;User Id=sa;Password=Hunter2!x;Encrypt=true",
        "Hunter2!x",
    );
    finds(
        "connection_string_password",
        "host=db; PWD = s3cret",
        "s3cret",
    );
    misses(
        "connection_string_password",
        "User Id=sa;Password=${DB_PASS};",
    );
}

#[test]
fn generic_secret() {
    finds(
        "generic_secret",
        r#"password = "Xk9#mP2$vL8q""#,
        "Xk9#mP2$vL8q",
    );
    // A call's quoted name and quoted value.
    for (text, value) in [
        (
            r#"System.setProperty("JFROG_TOKEN", "r30w2ee3ggdt7xt1o7hvznryxx7tnekbm");"#,
            "r30w2ee3ggdt7xt1o7hvznryxx7tnekbm",
        ),
        (r#"os.Setenv("DB_PASSWORD","Xk9#mP2$vL8q")"#, "Xk9#mP2$vL8q"),
    ] {
        finds("generic_secret", text, value);
    }
    finds(
        "aws_secret_key",
        "putenv('AWS_SECRET_ACCESS_KEY', '9Pu2njHkAm1+5wDr16EpLLJIVGHz4FxFEtKyPiYG')",
        "9Pu2njHkAm1+5wDr16EpLLJIVGHz4FxFEtKyPiYG",
    );
    misses(
        "generic_secret",
        r#"fields = ["token", "secret", "password"]"#,
    );
    misses("generic_secret", "the token, Xk9#mP2$vL8q in prose");
    misses("generic_secret", r#"f("api_token", Xk9mP2vL8qZ)"#);
    // Numeric secrets (Asana's, Discord's): 16 digits or more, not a repeated pattern.
    finds(
        "generic_secret",
        r#"asanaToken = "1258587603301919""#,
        "1258587603301919",
    );
    finds(
        "generic_secret",
        "discord_secret: 42553807249619431835026265420123",
        "42553807249619431835026265420123",
    );
    misses("generic_secret", "token_expiry = 1700000000000");
    misses("generic_secret", "secret = 1111111111111111");
    // A `:` inside a value (Sidekiq's `user:pass`), but a URL is not a secret.
    finds(
        "generic_secret",
        r#"BUNDLE_ENTERPRISE__CONTRIBSYS__COMToken="b2bb8d74:7cfd4e64""#,
        "b2bb8d74:7cfd4e64",
    );
    misses(
        "generic_secret",
        "access_token_url='https://github.com/login/oauth/access_token'",
    );
    finds(
        "generic_secret",
        r#"{"client_secret": "F%Dm7ena8D5VfLDpgyyjVw5H"}"#,
        "F%Dm7ena8D5VfLDpgyyjVw5H",
    );
    finds(
        "generic_secret",
        "DB_PASSWORD=s3cr3t-P4ssw0rd!",
        "s3cr3t-P4ssw0rd!",
    );
    finds(
        "generic_secret",
        "api_key: a8f5f167f44f4964e6c998dee827110c",
        "a8f5f167f44f4964e6c998dee827110c",
    );
    finds(
        "generic_secret",
        r#"{\"token\": \"Zq81_kX0pLw9\"}"#,
        "Zq81_kX0pLw9",
    );
    misses("generic_secret", "password: hunter");
    misses(
        "generic_secret",
        "the password is strong and the token is valid",
    );
    misses("generic_secret", "max_tokens = 4096");
    misses("generic_secret", "token_count: 12345678");
    misses("generic_secret", "password = os.environ");
    misses("generic_secret", "api_key = \"your-api-key-here\"");
    misses("generic_secret", "password: ********");
    // A specific detector owns the value.
    let gh = tok("ghp_", "u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d");
    misses("generic_secret", &format!("token = {gh}"));
}
