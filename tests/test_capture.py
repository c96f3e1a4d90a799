"""Per-node capture of prints and log records: isolated between threads, logging left as found."""

from __future__ import annotations

import logging
import sys
import threading

from wfe.engine._capture import capture_output


def test_threads_each_capture_only_their_own_output() -> None:
    results: dict[int, str] = {}
    barrier = threading.Barrier(8)

    def node(index: int) -> None:
        with capture_output() as captured:
            barrier.wait()  # all eight capture at the same time
            for line in range(50):
                print(f"node {index} line {line}")
                logging.getLogger("user.code").info("node %d record %d", index, line)
        results[index] = captured.text()

    threads = [threading.Thread(target=node, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, text in results.items():
        lines = text.splitlines()
        assert len(lines) == 100
        assert all(f"node {index} " in line for line in lines), index


def test_logging_configuration_is_restored_afterwards() -> None:
    root = logging.getLogger()
    before = (root.level, list(root.handlers), [h.level for h in root.handlers])
    with capture_output(logging.DEBUG) as captured:
        logging.getLogger("user.code").debug("fine detail")
        with capture_output() as inner:  # nested captures are independent
            logging.getLogger("user.code").warning("inner")
    assert "DEBUG user.code: fine detail" in captured.text() and "inner" not in captured.text()
    assert "WARNING user.code: inner" in inner.text()
    assert (root.level, list(root.handlers), [h.level for h in root.handlers]) == before


def test_engine_records_and_other_threads_are_not_captured() -> None:
    outside: list[str] = []
    with capture_output() as captured:
        logging.getLogger("wfe.engine._runner").warning("engine message")
        thread = threading.Thread(target=lambda: outside.append(str(sys.stdout.write("from elsewhere\n"))))
        thread.start()
        thread.join()
        print("from the node")
    assert captured.text() == "from the node\n"
    assert outside  # the other thread's write went to the real stdout


def test_a_flood_is_capped() -> None:
    with capture_output() as captured:
        for _ in range(2000):
            print("x" * 4096)
    text = captured.text()
    assert text.endswith("[output truncated]\n") and len(text) < 5 * 1024 * 1024


def test_wfe_records_keep_the_level_they_had_while_node_records_are_let_through() -> None:
    own = logging.getLogger("wfe")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"{record.levelname} {record.getMessage()}")

    handler = Keep()
    own.addHandler(handler)
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.WARNING)
    try:
        with capture_output() as captured:  # lowers the root to INFO for the node's own records
            logging.getLogger("user.code").info("node record")
            logging.getLogger("wfe.engine._runner").info("node n ran")  # below what was shown before: never made
            logging.getLogger("wfe.engine._runner").warning("engine warning")
        assert own.level == logging.NOTSET  # as found
        own.setLevel(logging.INFO)  # a user who asked for wfe's info records gets them, capture or not
        with capture_output():
            logging.getLogger("wfe.engine._runner").info("asked for")
        assert own.level == logging.INFO
    finally:
        own.removeHandler(handler)
        own.setLevel(logging.NOTSET)
        root.setLevel(saved)
    assert "node record" in captured.text()
    assert seen == ["WARNING engine warning", "INFO asked for"]
