import pytest
from label_studio_sdk.label_interface import LabelInterface

from backend.labeling import (
    TaskError,
    TaskKind,
    UnsupportedConfig,
    choices_result,
    parse_label_config,
    task_text,
)
from backend.labeling.results import labels_from_result
from backend.labeling.spec import spec_from_dict, spec_to_dict
from tests.support.payloads import AG_CONFIG, MULTI_CONFIG


def test_single_choice_spec():
    spec = parse_label_config(AG_CONFIG)
    assert spec.kind is TaskKind.CLASSIFICATION
    assert (spec.from_name, spec.to_name, spec.data_key) == ("topic", "text", "text")
    assert spec.labels == ("World", "Sports", "Business", "Sci/Tech")
    assert spec.rationale_name is None


def test_multiple_choice_spec_with_rationale():
    spec = parse_label_config(MULTI_CONFIG)
    assert spec.kind is TaskKind.MULTILABEL
    assert spec.rationale_name == "rationale"
    assert spec_from_dict(spec_to_dict(spec)) == spec


def test_data_key_comes_from_the_object_value():
    spec = parse_label_config(
        '<View><Text name="doc" value="$body"/><Choices name="c" toName="doc">'
        '<Choice value="a"/><Choice value="b" alias="B"/></Choices></View>'
    )
    assert (spec.to_name, spec.data_key, spec.labels) == ("doc", "body", ("a", "B"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            '<View><Text name="t" value="$t"/><Rating name="stars" toName="t"/></View>',
            '<Rating name="stars"> is not supported',
        ),
        (
            '<View><Audio name="clip" value="$audio"/><Choices name="c" toName="clip">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            '<Audio name="clip">, which is not supported',
        ),
        ('<View><Text name="t" value="$t"/></View>', "no <Choices> or <Labels> control"),
        (
            '<View><Text name="t" value="$t"/><Choices name="a" toName="t"><Choice value="x"/><Choice value="y"/>'
            '</Choices><Choices name="b" toName="t"><Choice value="x"/><Choice value="y"/></Choices></View>',
            'several labeling controls (<Choices name="a">, <Choices name="b">)',
        ),
        ("this is not xml", "not valid XML"),
        ("", "empty"),
        (
            '<View><Text name="t" value="$t" valueType="url"/><Choices name="c" toName="t">'
            '<Choice value="x"/><Choice value="y"/></Choices></View>',
            'valueType="url"',
        ),
        (
            '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="x"/></Choices></View>',
            "at least two",
        ),
    ],
)
def test_unsupported_configs_name_what_to_change(config, message):
    with pytest.raises(UnsupportedConfig) as info:
        parse_label_config(config)
    assert message in str(info.value)


def test_task_text_errors_fail_the_task_alone():
    spec = parse_label_config(AG_CONFIG)
    assert task_text({"data": {"text": "hello"}}, spec, 100) == "hello"
    assert task_text({"data": {"text": "x" * 500}}, spec, 100) == "x" * 100
    for bad, reason in [
        ("nope", "JSON object"),
        ({"id": 1}, "no 'data'"),
        ({"data": {"body": "hi"}}, "no key 'text'"),
        ({"data": {"text": 42}}, "must be a string"),
        ({"data": {"text": "   "}}, "is empty"),
    ]:
        with pytest.raises(TaskError, match=reason):
            task_text(bad, spec, 100)


@pytest.mark.parametrize("config", [AG_CONFIG, MULTI_CONFIG])
def test_results_validate_against_label_studios_own_validator(config):
    spec = parse_label_config(config)
    chosen = list(spec.labels[:2]) if spec.multi_label else [spec.labels[1]]
    result = choices_result(spec, chosen)
    assert LabelInterface(config).validate_prediction({"result": result}, return_errors=True) == []
    assert labels_from_result(spec, result) == chosen
    assert choices_result(spec, []) == []


def test_labels_from_result_ignores_other_controls_and_unknown_labels():
    spec = parse_label_config(MULTI_CONFIG)
    result = [
        {"from_name": "rationale", "to_name": "text", "type": "textarea", "value": {"text": ["because"]}},
        {"from_name": "tags", "to_name": "text", "type": "choices", "value": {"choices": ["Sports", "Gone"]}},
    ]
    assert labels_from_result(spec, result) == ["Sports"]
    assert labels_from_result(spec, result[:1]) is None
