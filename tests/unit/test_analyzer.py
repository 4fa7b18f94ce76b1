"""Analyzer: casing, Unicode, punctuation, stopwords, stemming."""

from __future__ import annotations

import pytest
from ragroute.tools.analyzer import Analyzer, light_stem, tokenize


def test_lowercase_punctuation_and_stopwords():
    assert tokenize("The Quick, brown FOX!!! (jumps)") == ["quick", "brown", "fox", "jump"]
    assert tokenize("") == [] and tokenize("the of and") == []


def test_unicode_words_survive():
    toks = Analyzer(stem=False).tokens("Die Bereitstellung über Docker — naïve café Ⅻ")
    assert "über" in toks and "naïve" in toks and "café" in toks and "bereitstellung" in toks
    # NFKC folds compatibility forms, casefold handles ß
    assert Analyzer(stem=False).tokens("ＡＢＣ Straße") == ["abc", "strasse"]


def test_identifiers_split_on_punctuation_but_keep_digits():
    assert tokenize("error E1042 in v2.10: k8s_pod") == ["error", "e1042", "v2", "10", "k8s", "pod"]


@pytest.mark.parametrize(
    "word, stem",
    [
        ("cells", "cell"),
        ("studies", "study"),
        ("running", "run"),
        ("stopped", "stop"),
        ("activation", "activat"),
        ("activated", "activat"),
        ("analysis", "analysis"),
        ("bus", "bus"),
        ("k8s", "k8s"),
        ("mice", "mice"),
    ],
)
def test_light_stem(word, stem):
    assert light_stem(word) == stem


def test_stemming_can_be_disabled_and_signature_changes():
    on, off = Analyzer(stem=True), Analyzer(stem=False)
    assert on.tokens("running cells") == ["run", "cell"]
    assert off.tokens("running cells") == ["running", "cells"]
    assert on.signature != off.signature
