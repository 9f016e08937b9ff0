"""Which HTTP parser this run exercises, and that it is the one that was asked for."""

from __future__ import annotations

import os

from apigw.server import parser_name


def test_the_parser_in_use_is_the_one_asked_for() -> None:
    # aiohttp falls back to the pure-Python parser silently when its C extension is missing;
    # a run meant for the C parser must not pass on the other one.
    if os.environ.get("AIOHTTP_NO_EXTENSIONS"):
        assert parser_name() == "pure Python"
    else:
        assert parser_name() == "C (llhttp)"
