"""book/nbval_sanitize.cfg replaces exactly the varying parts of notebook outputs."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

CFG = Path(__file__).resolve().parents[1] / "book" / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    parser = configparser.ConfigParser()
    parser.read(CFG, encoding="utf-8")
    for section in parser.sections():
        text = re.sub(parser[section]["regex"], parser[section]["replace"], text)
    return text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<Foo at 0x7f3a2b4c5d60>", "<Foo at 0xADDRESS>"),
        (
            "/tmp/ipykernel_1234/567.py:3: UserWarning",
            "/tmp/ipykernel/CELL.py:3: UserWarning",
        ),
        (
            "100%|##| 63/63 [00:01<00:00, 45.21it/s]",
            "100%|##| 63/63 [ELAPSED<REMAINING, RATE]",
        ),
        ("  0%|  | 0/63 [00:00<?, ?it/s]", "  0%|  | 0/63 [ELAPSED<REMAINING, RATE]"),
        ("epoch 1: 2.3s/it", "epoch 1: RATE"),
        (
            "conv: 1.23 ms, naive: 4 s, fft: 12.5 µs",
            "conv: TIME, naive: TIME, fft: TIME",
        ),
    ],
)
def test_varying_parts_are_replaced(text, expected):
    assert sanitize(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "153 settings checked",
        "x (1, 1, 28, 28) -> conv (1, 2, 28, 28)",
        "test accuracy: 97.6 %",
        "loss 0.0123, 5 steps",
    ],
)
def test_results_are_left_alone(text):
    assert sanitize(text) == text
