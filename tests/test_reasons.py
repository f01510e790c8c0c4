"""Why a task is in front of a human: the sentence the labeling page shows (issue 16, item 1)."""

from backend.serving.reasons import Why, kind, reason


def test_each_kind_says_why_with_the_calibrated_confidence():
    unsure = reason(Why.UNSURE, 0.54, 0.92)
    assert unsure == ("Most informative: the model is unsure (confidence 54%, below the 92% it needs to skip review).")
    assert "93%, below the 94%" in reason(Why.UNSURE, 0.93, 0.94)
    assert reason(Why.UNSURE, 0.54, None) == (
        "Most informative: the least certain task left in its part of the data "
        "(confidence 54%; no prediction of this version skips review yet)."
    )
    assert "the least certain task left in its part" in reason(Why.UNSURE, 0.97, 0.92)  # diversity, not doubt
    audit = reason(Why.AUDIT, 0.97, 0.92, audit_share=0.05)
    assert audit.startswith("Audit sample: a random 5% of the tasks that would skip review") and "97" not in audit
    assert "unlike the data the model learned from" in reason(Why.DRIFT, 0.6, 0.9)
    assert "never trained on" in reason(Why.HELDOUT, 0.6, 0.9) and "60" not in reason(Why.HELDOUT, 0.6, 0.9)
    assert "no annotated task is like this one yet" in reason(Why.UNEXPLORED, 0.6, 0.9)
    assert "no model yet" in reason(Why.COLD_START, None, None)
    assert reason(Why.CONFIDENT, 0.9649, 0.96) == (
        "Confident: the model is confident (96%, at or above the 96% that lets a prediction skip review); a random 5% "
        "of such tasks is still checked by a person."
    )
    assert reason(Why.REVIEW, 0.41, None) == (
        "Needs review: no prediction of this version skips review yet (confidence 41%)."
    )
    assert reason(Why.REVIEW, 0.41, 0.9).startswith("Needs review: the model is unsure (confidence 41%, below")
    assert reason(Why.REVIEW, 0.41, None, note="a multi-label answer always goes to a person") == (
        "Needs review: a multi-label answer always goes to a person (confidence 41%)."
    )
    assert reason(Why.REVIEW, None, None) == (
        "Needs review: no model has been trained yet, so every task goes to a person."
    )
    assert "still checked" not in reason(Why.CONFIDENT, 0.97, 0.9, audit_share=0.0)  # no audit: no such claim
    assert "a random 0.5% of the tasks" in reason(Why.AUDIT, 0.97, 0.9, audit_share=0.005)
    assert reason(Why.DISAGREE, 0.72, 0.9, second_opinion=("World", "Business")) == (
        "Models disagree: the fine-tuned model says World (confidence 72%) but the model on the base encoder "
        "says Business; your label settles it."
    )
    for why in Why:  # the tab's column and the tests read the kind back from the sentence
        assert kind(reason(why, 0.5, 0.9, second_opinion=("a", "b"))) == why
    assert kind("Suspected label error: labeled World; ...") == Why.SUSPECT  # the label check's sentence
    assert kind("") is None and kind("something else: x") is None


def test_the_confidence_in_words_is_the_score_stored_with_the_prediction():
    """Issue 26: the header said "about 50 %" while the prediction said 92 %. It now reads out the
    prediction's stored score, a whole percent, and nothing else."""
    from backend.serving.presentation import shown_score

    for confidence in (0.5449, 0.551, 0.599, 0.921, 0.999):
        assert f"confidence {round(100 * shown_score(confidence))}%" in reason(Why.UNSURE, confidence, None)
