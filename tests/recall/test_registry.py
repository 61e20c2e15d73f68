import pytest

from tuijian.recall.hot import HotSource
from tuijian.recall.registry import SOURCE_CODE, SOURCE_NAMES, register_source


def test_codes_are_fixed_per_name_and_never_reused() -> None:
    assert SOURCE_CODE["hot"] == 2 and SOURCE_NAMES[12] == "two_tower"
    register_source("hot", HotSource, 2)  # re-registering the same pair is harmless
    with pytest.raises(ValueError, match="already taken"):
        register_source("impostor", HotSource, 2)
    with pytest.raises(ValueError, match="already taken"):
        register_source("hot", HotSource, 40)
    with pytest.raises(ValueError, match="0..62"):
        register_source("too_far", HotSource, 70)
