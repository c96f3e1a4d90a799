"""MIME types from type hints: each mapping run through a workflow, declared types winning, one-line errors."""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Literal, TypedDict

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from wfe.graph._functions import derive_version, resolve
from wfe.graph._hints import HintError

JSON, TEXT, BYTES = "application/json", "text/plain", "application/octet-stream"
PARQUET, NPY = "application/vnd.apache.parquet", "application/x-npy"

def graph(name: str, nodes: list[dict[str, Any]], edges: list[tuple[str, str]]) -> wfe.WorkflowGraph:
    return wfe.WorkflowGraph(name=name, nodes=nodes, edges=[{"source": s, "target": t} for s, t in edges])


def chain(name: str, *functions: str, config: dict[str, Any] | None = None) -> wfe.WorkflowGraph:
    nodes = [{"id": f, "function": f} for f in functions]
    nodes[0]["config"] = config or {}
    return graph(name, nodes, list(itertools.pairwise(functions)))


def ran(workflow: wfe.WorkflowGraph, tmp_path: Path) -> wfe.RunResult:
    result = wfe.run(workflow, str(tmp_path / "store"))
    failed = {n: r.error for n, r in result.manifest.nodes.items() if r.status == "failed"}
    assert result.status == "succeeded", failed
    return result


def mimes(result: wfe.RunResult, node_id: str) -> list[str]:
    return [a.mime for a in result.outputs(node_id)]


def spec(name: str) -> tuple[list[tuple[str, bool, str | None]], list[str]]:
    entry = resolve(name)
    return [(i.mime, i.as_path, i.name) for i in entry.inputs], [o.mime for o in entry.outputs]


# JSON, text and bytes -----------------------------------------------------------------------------

@wfe.function
def th_numbers(*, count: int = 3) -> dict[str, list[int]]:
    return {"values": list(range(count))}


@wfe.function
def th_words(numbers: dict[str, list[int]], *, sep: str = " ") -> str:
    return sep.join(str(n) for n in numbers["values"])


@wfe.function
def th_encoded(text: str) -> bytes:
    return text.encode() + b"\x00"


@wfe.function
def th_sizes(data: bytes, /) -> tuple[int, float, bool, list[str], dict[str, Any] | None]:
    return len(data), len(data) / 2, data.endswith(b"\x00"), ["a", "b"], None


def test_dict_str_bytes_and_json_scalars_map_to_json_text_and_octet_stream(tmp_path: Path) -> None:
    result = ran(chain("plain", "th_numbers", "th_words", "th_encoded", "th_sizes", config={"count": 4}), tmp_path)
    assert spec("th_numbers") == ([], [JSON])
    assert spec("th_words") == ([(JSON, False, "numbers")], [TEXT])
    assert spec("th_encoded") == ([(TEXT, False, "text")], [BYTES])
    assert spec("th_sizes") == ([(BYTES, False, "data")], [JSON] * 5)
    assert mimes(result, "th_numbers") == [JSON] and result["th_numbers"] == {"values": [0, 1, 2, 3]}
    assert mimes(result, "th_words") == [TEXT] and result["th_words"] == "0 1 2 3"
    assert mimes(result, "th_encoded") == [BYTES] and result["th_encoded"] == b"0 1 2 3\x00"
    values = [json.loads(result.store.blobs.get(a.digest)) for a in result.outputs("th_sizes")]
    assert values == [8, 4.0, True, ["a", "b"], None]


class Totals(TypedDict):
    region: str
    amounts: list[float]


@wfe.function
def th_totals(*, region: str) -> Totals:
    return {"region": region, "amounts": [1.5, 2.5]}


@wfe.function
def th_grade(totals: Totals) -> Literal["low", "high"] | None:
    return "high" if sum(totals["amounts"]) > 3 else "low"


def test_typed_dicts_literals_and_optionals_are_json(tmp_path: Path) -> None:
    result = ran(chain("typed", "th_totals", "th_grade", config={"region": "north"}), tmp_path)
    assert spec("th_grade") == ([(JSON, False, "totals")], [JSON])
    assert result["th_totals"] == {"region": "north", "amounts": [1.5, 2.5]} and result["th_grade"] == "high"


@wfe.function
def th_sink(values: list[int]) -> None:
    assert values == [0, 1, 2]


@wfe.function(outputs="application/json")
def th_range(*, count: int) -> Any:
    return list(range(count))


def test_a_none_return_hint_means_no_outputs(tmp_path: Path) -> None:
    result = ran(chain("sink", "th_range", "th_sink", config={"count": 3}), tmp_path)
    assert spec("th_sink") == ([(JSON, False, "values")], [])
    assert result.outputs("th_sink") == []


# Files, tables and arrays -------------------------------------------------------------------------

@wfe.function
def th_file(*, text: str) -> Path:
    path = Path(wfe.scratch_dir()) / "out.bin"
    path.write_bytes(text.encode())
    return path


@wfe.function
def th_file_size(path: Path) -> int:
    assert isinstance(path, Path), type(path)
    return path.stat().st_size


def test_a_returned_path_is_stored_as_octet_stream(tmp_path: Path) -> None:
    result = wfe.run(graph("file", [{"id": "th_file", "function": "th_file", "config": {"text": "hello"}}], []),
                     str(tmp_path / "store"))
    assert spec("th_file") == ([], [BYTES])
    assert mimes(result, "th_file") == [BYTES] and result["th_file"] == b"hello"


def test_a_path_input_is_a_local_copy_of_an_octet_stream() -> None:
    assert spec("th_file_size") == ([(BYTES, True, "path")], [JSON])


def test_a_path_input_arrives_as_a_path(tmp_path: Path) -> None:
    result = ran(chain("paths", "th_file", "th_file_size", config={"text": "hello"}), tmp_path)
    assert result["th_file_size"] == 5


def test_registered_call_turns_a_path_input_into_a_path(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert resolve("th_file_size").call(str(tmp_path / "f")) == 3


def _frame_functions() -> None:
    pandas = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    numpy = pytest.importorskip("numpy")
    namespace: dict[str, Any] = {"pandas": pandas, "pa": pa, "numpy": numpy, "wfe": wfe}
    exec(textwrap.dedent("""
        import numpy.typing

        @wfe.function
        def th_frame(*, n: int) -> pandas.DataFrame:
            return pandas.DataFrame({"x": list(range(n))})

        @wfe.function
        def th_table_sum(table: pa.Table) -> int:
            assert isinstance(table, pa.Table)
            return sum(table.column("x").to_pylist())

        @wfe.function
        def th_frame_sum(frame: pandas.DataFrame) -> int:
            assert isinstance(frame, pandas.DataFrame), type(frame)
            return int(frame["x"].sum())

        @wfe.function
        def th_array(*, n: int) -> numpy.ndarray:
            return numpy.arange(n, dtype="int64")

        @wfe.function
        def th_array_sum(array: numpy.typing.NDArray[numpy.int64]) -> pa.Table:
            return pa.table({"x": [int(array.sum())]})
    """), namespace)


def test_frames_and_tables_are_parquet_and_arrays_npy(tmp_path: Path) -> None:
    _frame_functions()
    assert spec("th_frame") == ([], [PARQUET])
    assert spec("th_table_sum") == ([(PARQUET, False, "table")], [JSON])
    assert spec("th_frame_sum") == ([(PARQUET, False, "frame")], [JSON])
    assert spec("th_array_sum") == ([(NPY, False, "array")], [PARQUET])
    result = ran(graph("frames", [
        {"id": "frame", "function": "th_frame", "config": {"n": 4}},
        {"id": "table_sum", "function": "th_table_sum"},
        {"id": "array", "function": "th_array", "config": {"n": 5}},
        {"id": "array_sum", "function": "th_array_sum"},
    ], [("frame", "table_sum"), ("array", "array_sum")]), tmp_path)
    assert mimes(result, "frame") == [PARQUET] and result["table_sum"] == 6
    assert mimes(result, "array") == [NPY] and list(result["array"]) == [0, 1, 2, 3, 4]
    assert mimes(result, "array_sum") == [PARQUET] and result["array_sum"].column("x").to_pylist() == [10]


def test_a_data_frame_input_arrives_as_a_data_frame(tmp_path: Path) -> None:
    _frame_functions()
    result = ran(chain("frame_in", "th_frame", "th_frame_sum", config={"n": 4}), tmp_path)
    assert result["th_frame_sum"] == 6


def test_registered_call_turns_a_parquet_table_into_a_data_frame() -> None:
    _frame_functions()
    import pyarrow as pa

    assert resolve("th_frame_sum").call(pa.table({"x": [1, 2, 3]})) == 6


def test_pandas_pyarrow_and_numpy_are_imported_only_for_their_own_hints() -> None:
    script = textwrap.dedent("""
        import pathlib, sys, typing
        import wfe

        @wfe.function
        def f(a: dict, b: list[int], c: str, d: bytes, e: pathlib.Path, *, k: int = 0) -> tuple[str, typing.Any | None]:
            ...

        print(sorted(m for m in sys.modules if m.split(".")[0] in ("pandas", "pyarrow", "numpy")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# pydantic models and dataclasses ------------------------------------------------------------------

class Order(pydantic.BaseModel):
    item: str
    quantity: int


@dataclasses.dataclass
class Line:
    item: str
    cents: int


@wfe.function
def th_orders(*, items: list[str]) -> list[Order]:
    return [Order(item=item, quantity=len(item)) for item in items]


@wfe.function
def th_lines(orders: list[Order]) -> tuple[list[Line], Order | None]:
    assert all(isinstance(o, Order) for o in orders), orders
    return [Line(o.item, o.quantity * 100) for o in orders], orders[0] if orders else None


def test_models_and_dataclasses_are_json() -> None:
    assert spec("th_orders") == ([], [JSON])
    assert spec("th_lines") == ([(JSON, False, "orders")], [JSON, JSON])


def test_registered_call_validates_model_inputs_and_dumps_model_and_dataclass_outputs() -> None:
    assert resolve("th_orders").call(items=["ab"]) == [{"item": "ab", "quantity": 2}]
    assert resolve("th_lines").call([{"item": "ab", "quantity": 2}]) == (
        [{"item": "ab", "cents": 200}], {"item": "ab", "quantity": 2})
    with pytest.raises(pydantic.ValidationError):
        resolve("th_lines").call([{"item": "ab"}])


def test_models_and_dataclasses_go_through_a_workflow_as_json(tmp_path: Path) -> None:
    result = ran(chain("models", "th_orders", "th_lines", config={"items": ["ab", "c"]}), tmp_path)
    assert result["th_orders"] == [{"item": "ab", "quantity": 2}, {"item": "c", "quantity": 1}]
    lines, first = (json.loads(result.store.blobs.get(a.digest)) for a in result.outputs("th_lines"))
    assert lines == [{"item": "ab", "cents": 200}, {"item": "c", "cents": 100}]
    assert first == {"item": "ab", "quantity": 2}


# Declared types win; no hints keep the defaults ---------------------------------------------------

@wfe.function(inputs=["text/csv"], outputs="application/json")
def th_declared(data: bytes) -> str:
    return json.dumps(len(data))


@wfe.function(outputs=[wfe.Output("application/json", name="n", kind="inline")])
def th_half_declared(text: str, *, extra: int = 0) -> bytes:
    return len(text) + extra  # type: ignore[return-value]


@wfe.function
def th_unhinted(data, *, flag=False):  # type: ignore[no-untyped-def]
    return data


def test_declared_mime_types_win_over_hints_and_each_side_is_inferred_alone() -> None:
    assert spec("th_declared") == ([("text/csv", False, None)], [JSON])
    assert resolve("th_declared").conversions is None
    assert spec("th_half_declared") == ([(TEXT, False, "text")], [JSON])
    assert resolve("th_half_declared").outputs[0].kind == "inline"


def test_a_function_without_hints_keeps_no_inputs_and_one_octet_stream_output() -> None:
    assert spec("th_unhinted") == ([], [BYTES])


def test_hints_leave_the_derived_version_alone() -> None:
    def versions() -> set[str]:
        return {resolve(n).spec.version for n in ("th_declared", "th_numbers")}

    assert versions() == {derive_version(th_declared), derive_version(th_numbers)}
    assert all(v.startswith("auto:") for v in versions())


def test_hinted_functions_of_an_existing_example_keep_their_declared_types() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "sales"))
    already = "sales_functions" in sys.modules
    try:
        import sales_functions  # noqa: F401
    finally:
        sys.path.pop(0)
        if not already:  # workflows that load the example's copy must not find this one imported
            sys.modules.pop("sales_functions", None)
    assert spec("revenue_by_month") == ([("text/csv", False, None)], [JSON])
    assert spec("render_report") == ([(JSON, False, None), (JSON, False, None)], ["text/html"])


# Errors at decoration -----------------------------------------------------------------------------

def register(source: str, *, future: bool = False, **declared: Any) -> Any:
    namespace: dict[str, Any] = {}
    header = "from __future__ import annotations\n" if future else ""
    code = header + "import pathlib, typing\nfrom typing import Any\n" + textwrap.dedent(source)
    exec(compile(code, "<hinted>", "exec", dont_inherit=True), namespace)  # this module's __future__ not inherited
    return wfe.function(**declared)(namespace["th_bad"]) if declared else wfe.function(namespace["th_bad"])


@pytest.mark.parametrize(("source", "fragment"), [
    ("def th_bad(x: Any) -> int: ...", "parameter 'x': hint Any names no MIME type"),
    ("def th_bad(x: int) -> typing.Any: ...", "return hint: hint Any names no MIME type"),
    ("def th_bad(x: set[int]): ...", "parameter 'x': hint set[int] maps to no MIME type"),
    ("def th_bad(x: dict[int, str]): ...", "parameter 'x': hint dict[int, str] maps to no MIME type"),
    ("def th_bad(x: list[bytes]): ...", "parameter 'x': hint list[bytes] maps to no MIME type"),
    ("def th_bad(x: tuple[int, int]): ...", "parameter 'x': hint tuple[int, int] maps to no MIME type"),
    ("def th_bad(x: str | bytes): ...", "parameter 'x': hint str | bytes has no single MIME type"),
    ("def th_bad(x: bytes | None): ...", "parameter 'x': hint bytes | None has no single MIME type"),
    ("def th_bad(x: bytes | pathlib.Path): ...", "parameter 'x': hint bytes | pathlib.Path has no single"),
    ("def th_bad(x: int, y): ...", "parameter 'y' has no type hint"),
    ("def th_bad() -> tuple[int, ...]: ...", "return hint tuple[int, ...] gives no number of outputs"),
    ("def th_bad() -> tuple[int, set[int]]: ...", "return hint element 1: hint set[int] maps to no MIME type"),
    ("def th_bad(x: 'Missing'): ...", "cannot resolve the type hint of parameter 'x' (Missing): name 'Missing'"),
    ("def th_bad() -> 'list[Missing]': ...", "cannot resolve the type hint of return hint"),
])
def test_an_unmappable_or_unresolvable_hint_is_a_one_line_error_at_decoration(source: str, fragment: str) -> None:
    with pytest.raises(HintError) as caught:
        register(source)
    message = str(caught.value)
    assert isinstance(caught.value, wfe.FunctionError) and isinstance(caught.value, TypeError)
    assert message.startswith("th_bad: ") and "\n" not in message, message
    assert fragment in message, message


def test_declaring_the_side_with_a_bad_hint_avoids_the_error() -> None:
    register("def th_bad(x: set[int], *, k: 'Missing') -> typing.Any: ...",
             inputs=["application/json"], outputs="application/json")
    assert spec("th_bad") == ([(JSON, False, None)], [JSON])


def test_an_unresolvable_hint_on_a_config_parameter_does_not_matter() -> None:
    register("def th_bad(x: dict, *, k: Missing = None) -> str: ...", future=True)
    assert spec("th_bad") == ([(JSON, False, "x")], [TEXT])


@pytest.mark.parametrize("future", [False, True])
def test_hints_work_with_and_without_postponed_annotations(future: bool) -> None:
    register("def th_bad(x: dict[str, typing.Any], y: pathlib.Path, *, k: int = 0) -> tuple[str, bytes]: ...",
             future=future)
    assert spec("th_bad") == ([(JSON, False, "x"), (BYTES, True, "y")], [TEXT, BYTES])


# Properties ---------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@wfe.function
def th_given(*, value: dict[str, Any]) -> dict[str, Any]:
    return value


@wfe.function
def th_identity(value: dict[str, Any]) -> dict[str, Any]:
    return value


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4))
def test_json_values_round_trip_through_a_dict_hinted_function(tmp_path: Path, value: dict[str, Any]) -> None:
    result = ran(chain("round_trip", "th_given", "th_identity", config={"value": value}), tmp_path)
    assert mimes(result, "th_identity") == [JSON]
    assert result["th_identity"] == value
