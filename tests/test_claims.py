"""The claim guards: a sentence a run contradicts stops the build and is quoted."""

import pytest

from t2i import claims, viz


def test_a_contradicted_sentence_raises_and_is_quoted():
    with pytest.raises(claims.ClaimFailed) as failure:
        claims.claim("the plain run collapses", 120 < 40, "120 vs 40 codes")
    message = str(failure.value)
    assert '"the plain run collapses"' in message and "120 vs 40 codes" in message


def test_a_claim_that_holds_is_listed_once_with_its_evidence():
    claims.claim("two is more than one", 2 > 1, "2 > 1")
    claims.claim("two is more than one", 2 > 1, "checked again")
    found = [c for c in claims.checked() if c.sentence == "two is more than one"]
    assert [c.evidence for c in found] == ["checked again"]


def test_the_run_info_footer_lists_the_checked_sentences():
    claims.claim("three is odd", 3 % 2 == 1, "3 mod 2 = 1")
    footer = viz.run_info("tiny", 0.0).data
    assert "checked against this run" in footer
    assert "| three is odd | 3 mod 2 = 1 |" in footer
