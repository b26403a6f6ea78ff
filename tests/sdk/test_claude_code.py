"""Claude Code, the CLI coding agent (npm `@anthropic-ai/claude-code`, installed by
scripts/test), pointed at the gateway with ANTHROPIC_BASE_URL: a secret in the prompt never
reaches the upstream, and the one in the answer reaches the terminal redacted."""

import os
import subprocess
from pathlib import Path

from mock_upstream import GH_TOKEN

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = Path(os.environ.get("CLAUDE_CODE_BIN", ROOT / "target" / "claude-code" / "node_modules" / ".bin" / "claude"))


def test_claude_code_through_the_gateway(gateway, upstream, tmp_path):
    assert CLAUDE.exists(), f"{CLAUDE} is missing: scripts/test installs it"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ANTHROPIC_BASE_URL": gateway.removesuffix("/v1"),
        "ANTHROPIC_API_KEY": "sk-client-key",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    before = len(upstream.requests)
    out = subprocess.run(
        [str(CLAUDE), "-p", f"Say hi. My token is {GH_TOKEN}", "--model", "claude-sonnet-4-5-text"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "Here is [REDACTED:github_token]." in out.stdout, out.stdout
    assert GH_TOKEN not in out.stdout
    sent = [r for r in upstream.requests[before:] if r["path"].startswith("/v1/messages")]
    assert sent, "Claude Code's requests went through the gateway"
    for r in sent:
        assert GH_TOKEN.encode() not in r["body"]
        assert r["headers"]["x-api-key"] == "sk-ant-provider-key"
