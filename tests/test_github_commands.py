"""Workflow command lines, escaped as GitHub's toolkit escapes them."""

from __future__ import annotations

from loadaction.github import commands


def test_an_error_at_a_file_and_line():
    assert commands.error("p(95)<500: observed 612ms", file="plans/shop.yml", line=14,
                          title="Budget exceeded") == (
        "::error file=plans/shop.yml,line=14,title=Budget exceeded::p(95)<500: observed 612ms")


def test_properties_escape_colons_and_commas_and_data_escapes_newlines():
    line = commands.error("50%\nof it\r", file="C:\\a,b.yml", title="a: b, c")
    assert line == "::error file=C%3A\\a%2Cb.yml,title=a%3A b%2C c::50%25%0Aof it%0D"
    assert "\n" not in line


def test_properties_left_out_when_none():
    assert commands.error("boom") == "::error::boom"
    assert commands.warning("careful", title="loadaction") == "::warning title=loadaction::careful"


def test_groups():
    assert commands.group("Scenario a\nb") == "::group::Scenario a%0Ab"
    assert commands.endgroup() == "::endgroup::"


def test_masks_cover_each_line_of_a_multiline_secret_and_skip_empty_ones():
    lines = commands.add_masks(["", "s3cr3t-token", "-----BEGIN KEY-----\nAAAA\n-----END KEY-----"])
    assert lines == [
        "::add-mask::s3cr3t-token",
        "::add-mask::-----BEGIN KEY-----%0AAAAA%0A-----END KEY-----",
        "::add-mask::-----BEGIN KEY-----",
        "::add-mask::AAAA",
        "::add-mask::-----END KEY-----",
    ]


def test_a_repeated_secret_is_masked_once():
    assert commands.add_masks(["abcd1234", "abcd1234"]) == ["::add-mask::abcd1234"]
