import pytest

from shared.classes import DEFAULT_CLASSES, DEFAULT_LABEL_SET, LabelSet, UnknownClassError


def test_default_classes_are_the_six_of_the_design_in_model_order() -> None:
    assert DEFAULT_CLASSES == (
        "normal",
        "thymoma",
        "thymic_carcinoma",
        "germ_cell_tumour",
        "neurogenic_tumour",
        "benign_cyst",
    )
    assert [DEFAULT_LABEL_SET.index(c) for c in DEFAULT_CLASSES] == list(range(6))


def test_unknown_class_error_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownClassError, match=r"lymphoma.*normal, thymoma"):
        DEFAULT_LABEL_SET.index("lymphoma")


@pytest.mark.parametrize("names", [("a",), ("a", "a"), ("ok", "Not-OK")])
def test_label_set_rejects_bad_sets(names: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        LabelSet(names)
