"""Operations on a store: garbage collection, verification, sync, run history, explain, rerun."""
