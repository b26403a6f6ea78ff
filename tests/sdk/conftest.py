import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mock_upstream import MockUpstream

ROOT = Path(__file__).resolve().parents[2]


def _free_ports(n):
    """n distinct free loopback ports: all are held until all are picked, so the OS cannot
    hand the same port back twice (the collision the Rust harness had)."""
    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


@pytest.fixture(scope="session")
def upstream():
    mock = MockUpstream()
    yield mock
    mock.stop()


@pytest.fixture(scope="session")
def gateway(upstream, tmp_path_factory):
    binary = os.environ.get("VEILGATE_BIN", str(ROOT / "target" / "debug" / "veilgate"))
    port, admin = _free_ports(2)
    tmp = tmp_path_factory.mktemp("gw")
    config = tmp / "veilgate.yaml"
    config.write_text(f"""
environment: test
listen: 127.0.0.1:{port}
admin: 127.0.0.1:{admin}
upstreams:
  mock:
    url: {upstream.url}
  claude:
    url: {upstream.url}
    api: anthropic
    api_key: sk-ant-provider-key
routes:
  - models: [fast]
    upstream: mock
    model: gpt-4o-mini
  - models: ["gpt-*", whisper-1, text-embedding-3-small, omni-moderation-latest, tts-1, dall-e-2]
    upstream: mock
  - models: ["claude-*"]
    upstream: claude
  - models: [metered]
    upstream: mock
    limits: {{usd_per_day: 0.015}}
prices:
  metered: {{input: 1000, output: 1000}}
""")
    log = open(tmp / "gateway.log", "wb")
    proc = subprocess.Popen([binary, "--config", str(config), "--threads", "2",
                             "--upgrade-sock", str(tmp / "upgrade.sock")],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError((tmp / "gateway.log").read_text())
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(timeout=40)
