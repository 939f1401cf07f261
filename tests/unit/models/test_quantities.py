"""Memory quantities: parsing every suffix the API server accepts, rounding, formatting, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responder.models import quantities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("512Mi", 512 * 2**20, id="mebibytes"),
        pytest.param("1Gi", 2**30, id="gibibytes"),
        pytest.param("1.5Gi", 3 * 2**29, id="fractional-binary"),
        pytest.param("1G", 10**9, id="decimal-giga"),
        pytest.param("128974848", 128974848, id="plain-bytes"),
        pytest.param("129e6", 129 * 10**6, id="exponent"),
        pytest.param("123k", 123000, id="decimal-kilo"),
        pytest.param("1500m", 2, id="milli-rounds-up"),
        pytest.param(" 64Ki ", 64 * 1024, id="surrounding-space"),
    ],
)
def test_parses_kubernetes_memory_quantities(text: str, expected: int) -> None:
    assert quantities.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "Gi", "12XB", "-1Gi", "1..2Mi", "ten"])
def test_rejects_what_is_not_a_memory_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        quantities.parse_bytes(text)


def test_rejects_booleans_that_yaml_might_produce() -> None:
    with pytest.raises(ValueError):
        quantities.parse_bytes(True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2**30, "1Gi"), (1536 * 2**20, "1536Mi"), (1000, "1000"), (0, "0"), (3 * 2**10, "3Ki")],
)
def test_formats_the_shortest_exact_binary_quantity(value: int, expected: str) -> None:
    assert quantities.format_bytes(value) == expected


@given(st.integers(min_value=0, max_value=2**62))
def test_formatting_then_parsing_gives_the_same_bytes(value: int) -> None:
    assert quantities.parse_bytes(quantities.format_bytes(value)) == value
