"""Every error wfe raises comes back whole from pickle: a node in another process (a pool, Dask) may raise it."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import wfe
import wfe._errors

ERRORS = sorted(
    (cls for _, cls in inspect.getmembers(wfe._errors, inspect.isclass) if issubclass(cls, wfe.WfeError)),
    key=lambda cls: cls.__name__,
)
# the errors whose constructors take more than a message, and how to call them
ARGUMENTS = {wfe.IntegrityError: 2, wfe.RecordError: 2, wfe.NodeError: 3}


def test_every_error_of_wfe_is_covered() -> None:
    assert {cls.__name__ for cls in ERRORS} >= {name for name in wfe.__all__ if name.endswith(("Error", "Damaged"))}
    own_constructor = [
        cls for cls in ERRORS if any(k.__module__ == "wfe._errors" and "__init__" in vars(k) for k in cls.__mro__)
    ]
    assert set(own_constructor) <= set(ARGUMENTS), own_constructor


@given(cls=st.sampled_from(ERRORS), texts=st.lists(st.text(max_size=40), min_size=3, max_size=3))
def test_an_error_comes_back_from_pickle_with_its_type_message_and_fields(cls: type, texts: list[str]) -> None:
    error = cls(*texts[: ARGUMENTS.get(cls, 1)])
    back: Any = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert str(back) == str(error)
    assert vars(back) == vars(error)
