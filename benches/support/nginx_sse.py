#!/usr/bin/env python3
"""Splits an SSE file into nginx `set` directives of at most ~3.5 KiB each (nginx caps one
parameter at 4 KiB), cut at event boundaries. Usage: nginx_sse.py SSE_FILE SETS_OUT VARS_OUT"""
import sys

src, sets_out, vars_out = sys.argv[1:]
events = [e + "\n\n" for e in open(src).read().split("\n\n") if e]
parts, cur = [], ""
for e in events:
    if cur and len(cur) + len(e) > 3500:
        parts.append(cur)
        cur = ""
    cur += e
parts.append(cur)
for p in parts:
    assert "'" not in p and "$" not in p and "\\" not in p, "the SSE text must not need escaping"
with open(sets_out, "w") as f:
    for i, p in enumerate(parts):
        f.write(f"            set $sse{i} '{p}';\n")
open(vars_out, "w").write("".join(f"${{sse{i}}}" for i in range(len(parts))))
